"""Suites run end to end on the default models: a Celery job, the shell command, and planning coverage."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from django.core.management import call_command

from analytics.quality import services
from analytics.quality.models import EvalRun
from research import services as research
from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.models import Job
from tests.conftest import Trio, Workers

REPORT = Path(__file__).parent / "fixtures" / "task-complexity-report-invoicing.json"


def _wait(job: Job, timeout: float = 180) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job.pk} did not finish: {job.status} {job.message}")


def test_complexity_suite_runs_as_a_job_against_the_imported_baseline(llm: Workers, trio: Trio) -> None:
    suite = services.suite_create(team=trio.team, name="Invoicing", kind="complexity", user=trio.owner)
    services.suite_import_file(suite=suite, data=REPORT.read_bytes(), name=REPORT.name)
    services.suite_import_file(suite=suite, data=b"key,expected_score\n3,6\n", name="human.csv")
    run = services.evalrun_create(suite=suite, user=trio.owner, config={"max_tokens": "48"})
    assert run.job is not None
    job = _wait(run.job)
    run.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.done, job.total, job.percent) == (2, 2, 100)
    assert run.status == EvalRun.Status.SUCCEEDED and run.model_name == CHAT_NAME
    results = list(run.results.select_related("item"))
    assert len(results) == 2
    for res in results:
        assert not res.error
        assert 1 <= res.output["score"] <= 10
        assert res.scores["within_20"] in (0.0, 1.0)
    # Baseline: task 3 scored 7 against the human 6 (within 20 %, error 1); task 4 has no human
    # score, so the baseline is its own reference.
    assert run.scores["baseline"] == {"within_20": 1.0, "mae": 0.5}
    model = run.scores["model"]
    assert model["within_20"] in (0.0, 0.5, 1.0)
    assert run.scores["ratio"]["within_20"] == model["within_20"]
    assert run.scores["items"] == 2 and run.scores["errors"] == 0


def test_research_suite_from_the_shell(llm: Workers, trio: Trio) -> None:
    collection = research.collection_create(team=trio.team, name="Facts", user=trio.owner, chunk_size=40)
    texts = {
        "Lighthouse": "The lighthouse keeper lights the lamp at dusk and trims the wick at midnight.",
        "Bakery": "The bakery opens at six; sourdough bread needs a starter fed the night before.",
    }
    for title, text in texts.items():
        research.source_add_text(collection=collection, user=None, title=title, text=text)
    assert _wait(research.ingest_start(collection=collection, user=None)).status == Job.Status.SUCCEEDED
    suite = services.suite_create(
        team=trio.team, name="Facts QA", kind="research", user=trio.owner, collection=collection
    )
    items = [
        {
            "key": "1",
            "text": "When does the lighthouse keeper light the lamp?",
            "expected_answer": "At dusk.",
            "expected_sources": ["Lighthouse"],
            "baseline": {"answer": "At dusk.", "sources": ["Lighthouse"]},
        },
        {
            "key": "2",
            "text": "What does sourdough bread need?",
            "expected_answer": "A starter fed the night before.",
            "expected_sources": ["Bakery"],
        },
    ]
    services.suite_import_file(suite=suite, data=json.dumps(items).encode(), name="facts.json")
    out = io.StringIO()
    call_command("run_eval", "Facts QA", "--team", "alpha", "--max-tokens", "32", "--k", "4", stdout=out)
    scores = json.loads(out.getvalue())
    assert scores["kind"] == "research" and scores["model_name"] == CHAT_NAME and scores["items"] == 2
    assert set(scores["model"]) == {"recall_at_k", "mrr", "token_f1", "rouge_l", "citation_precision"}
    # Two one-chunk documents and k=4: both are always retrieved.
    assert scores["model"]["recall_at_k"] == 1.0
    assert scores["model"]["mrr"] >= 0.5
    assert all(0.0 <= v <= 1.0 for v in scores["model"].values())
    # Only item 1 has a baseline, and it is the expected answer with the right source.
    assert scores["baseline"] == {
        "recall_at_k": 1.0,
        "mrr": 1.0,
        "token_f1": 1.0,
        "rouge_l": 1.0,
        "citation_precision": 1.0,
    }
    assert scores["baseline_items"] == 1
    run = EvalRun.objects.get(pk=scores["run"])
    assert run.job is not None and run.job.status == Job.Status.SUCCEEDED
    for res in run.results.all():
        assert sorted(res.output["retrieved"]) == ["Bakery", "Lighthouse"]
        assert isinstance(res.output["answer"], str) and res.output["answer"]


def test_planning_coverage_by_embeddings(llm: Workers, trio: Trio) -> None:
    suite = services.suite_create(team=trio.team, name="PRDs", kind="planning_prd", user=trio.owner)
    items = [
        {
            "key": "shop",
            "text": "A web shop: users sign in, browse products, and pay by card.",
            "expected_tasks": ["Set up the database", "Build the login page"],
            "baseline": {"tasks": ["Set up the database", "Payment integration"]},
        },
    ]
    services.suite_import_file(suite=suite, data=json.dumps(items).encode(), name="prd.json")
    run = services.evalrun_create(suite=suite, user=trio.owner, config={"max_tokens": 64}, enqueue=False)
    run = services.evalrun_execute(run_id=run.pk)
    assert run.status == EvalRun.Status.SUCCEEDED, run.error
    res = run.results.get()
    if res.error:
        # The tiny model may overrun its budget; that item then scores as a wrong answer.
        assert res.scores == {"coverage": 0.0}
    else:
        assert 1 <= len(res.output["tasks"]) <= 6
        assert res.scores["coverage"] in (0.0, 0.5, 1.0)
    # "Set up the database" matches itself exactly; "Payment integration" is not "Build the login page".
    assert run.scores["baseline"] == {"coverage": 0.5}
