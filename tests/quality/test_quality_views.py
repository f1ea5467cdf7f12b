"""Evaluation pages with the three users: owner, member (editor), outsider (404)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from analytics.quality import services
from analytics.quality.models import EvalResult, EvalRun, Suite
from research.models import Collection
from tests.conftest import Trio


def _client(user: object) -> Client:
    c = Client()
    c.force_login(user)  # type: ignore[arg-type]
    return c


def url(name: str, *args: object) -> str:
    return reverse(f"analytics:quality:{name}", args=args)


@pytest.fixture
def suite(trio: Trio) -> Suite:
    s = services.suite_create(team=trio.team, name="Cx", kind="complexity", user=trio.owner)
    services.suite_import_file(
        suite=s, data=b"key,title,text,expected_score,baseline_score\n1,A,Do A,4,5\n2,B,Do B,8,8\n", name="c.csv"
    )
    return s


def _finished_run(suite: Suite, model_score: float, within: float) -> EvalRun:
    run = EvalRun.objects.create(
        suite=suite,
        model_name="smollm2-135m-instruct",
        config={"model": "smollm2-135m-instruct", "max_tokens": 48},
        status=EvalRun.Status.SUCCEEDED,
        scores={
            "model": {"within_20": within, "mae": 1.0},
            "baseline": {"within_20": 1.0, "mae": 0.5},
            "ratio": {"within_20": within, "mae": 0.5},
        },
    )
    for item in suite.items.all():
        EvalResult.objects.create(
            run=run,
            item=item,
            output={"score": model_score, "reasoning": "r"},
            scores={"within_20": within, "mae": 1.0},
        )
    return run


def test_suite_pages_are_scoped_to_the_team(trio: Trio, suite: Suite) -> None:
    owner, member, outsider = _client(trio.owner), _client(trio.member), _client(trio.outsider)
    assert "Cx" in owner.get(url("index")).content.decode()
    assert "Cx" not in outsider.get(url("index")).content.decode()
    assert member.get(url("suite", suite.pk)).status_code == 200
    assert outsider.get(url("suite", suite.pk)).status_code == 404
    assert outsider.post(url("suite_import", suite.pk), {}).status_code == 404
    assert outsider.post(url("run_create", suite.pk), {}).status_code == 404
    run = _finished_run(suite, 5, 0.5)
    assert outsider.get(url("run", run.pk)).status_code == 404
    page = member.get(url("run", run.pk)).content.decode()
    assert 'data-metric="within_20"' in page and "0.500" in page


def test_import_through_the_page_reports_problems(trio: Trio, suite: Suite) -> None:
    member = _client(trio.member)
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = SimpleUploadedFile("r.json", json.dumps({"complexityAnalysis": [{"taskId": 1}]}).encode())
    page = member.post(url("suite_import", suite.pk), {"file": bad}, follow=True).content.decode()
    assert "Nothing was imported. r.json: complexityAnalysis[0]: complexityScore is missing." in page
    good = SimpleUploadedFile(
        "task-complexity-report.json",
        json.dumps(
            {"meta": {}, "complexityAnalysis": [{"taskId": 1, "taskTitle": "A", "complexityScore": 6}]}
        ).encode(),
    )
    page = member.post(url("suite_import", suite.pk), {"file": good}, follow=True).content.decode()
    assert "Imported: 0 new items, 1 updated." in page
    assert suite.items.get(key="1").baseline["score"] == 6.0


def test_run_form_validates_the_configuration(trio: Trio, suite: Suite) -> None:
    owner = _client(trio.owner)
    page = owner.post(url("run_create", suite.pk), {"model": "no-such-model"}, follow=True).content.decode()
    assert "no model named" in page and not EvalRun.objects.exists()
    page = owner.post(url("run_create", suite.pk), {"max_tokens": "5000"}, follow=True).content.decode()
    assert "max_tokens must be between 8 and 1024." in page or "no model is assigned" in page
    assert not EvalRun.objects.exists()


def test_compare_two_runs_side_by_side_with_trend(trio: Trio, suite: Suite) -> None:
    a, b = _finished_run(suite, 5, 0.5), _finished_run(suite, 8, 1.0)
    member, outsider = _client(trio.member), _client(trio.outsider)
    page = member.get(url("compare") + f"?runs={a.pk}&runs={b.pk}").content.decode()
    assert f"#{a.pk} smollm2-135m-instruct (max_tokens=48)" in page and f"#{b.pk}" in page
    assert 'data-chart="bar"' in page and "1.00\u00d7" in page and "0.50\u00d7" in page
    trend = member.get(url("suite", suite.pk)).content.decode()
    assert 'data-chart="line"' in trend and "Within ±20 % across runs" in trend
    # The outsider's request sees no runs of Alpha, so there is nothing to compare.
    r = outsider.get(url("compare") + f"?runs={a.pk}&runs={b.pk}")
    assert r.status_code == 302 and r["Location"] == url("index")


def test_builtin_suite_installs_once_with_its_documentation(trio: Trio) -> None:
    member = _client(trio.member)
    member.post(url("builtin_install"))
    member.post(url("builtin_install"))  # idempotent
    suites = {s.kind: s for s in Suite.objects.filter(team=trio.team, builtin=True)}
    assert set(suites) == {"research", "complexity"}
    research, cx = suites["research"], suites["complexity"]
    assert research.items.count() == 5 and cx.items.count() == 3
    collection = Collection.objects.get(team=trio.team, slug="project-docs")
    assert research.collection == collection
    assert sorted(collection.sources.values_list("name", flat=True)) == [
        "CONTRIBUTING.md",
        "README.md",
        "docs/deploy.md",
    ]
    # Expected sources are the documents' titles, as the research app will extract them.
    assert research.items.get(key="docs-1").expected_sources == ["Task Master Local"]
    assert research.items.get(key="docs-4").expected_sources == ["Deploying Task Master Local on several machines"]
    assert _client(trio.outsider).get(url("suite", research.pk)).status_code == 404
