"""Pattern recognition on a synthetic ledger with planted patterns and known ground truth."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.utils import timezone

from analytics import patterns, services, stats
from analytics.models import Finding, Recommendation
from analytics.tasks import patterns_job
from taskmaster.models import Feedback, Job
from taskmaster.services import job_create
from tests.analytics.seed import bulk_calls, chat_model
from tests.conftest import Trio

MODELS = ["m1", "m2", "m3"]
FEATURES = ["research.answer", "research.summarize", "planning.parse_prd", "planning.expand"]
SIZES = {  # input characters per feature: parse_prd and summarize see long inputs
    "research.answer": [500, 2_000, 8_000],
    "research.summarize": [8_000, 30_000],
    "planning.parse_prd": [2_000, 8_000, 30_000],
    "planning.expand": [500, 2_000],
}
GROUND_TRUTH = {
    ("failure_rate", (("feature", "planning.expand"), ("model", "m2"))),
    ("failure_rate", (("feature", "research.answer"), ("template", "v2"))),
    ("failure_rate", (("feature", "planning.parse_prd"), ("size", "l"))),
    ("failure_rate", (("model", "m3"),)),
    ("low_rating", (("feature", "research.summarize"), ("model", "m1"))),
    ("ttft_context", (("model", "m2"),)),
}


def synthetic_ledger(team: Any, user: Any, n: int = 4000, seed: int = 7) -> None:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        model, feature = rng.choice(MODELS), rng.choice(FEATURES)
        template = rng.choice(["v1", "v2"]) if feature == "research.answer" else "v1"
        chars = int(rng.choice(SIZES[feature]) * rng.uniform(0.8, 1.2))
        prompt_tokens = chars // 4
        p_fail, error_class = 0.04, rng.choice(["timeout", "schema_validation", "worker_lost"])
        if model == "m2" and feature == "planning.expand":
            p_fail, error_class = 0.45, "schema_validation"
        if feature == "research.answer" and template == "v2":
            p_fail, error_class = max(p_fail, 0.35), "schema_validation"
        if feature == "planning.parse_prd" and patterns.size_bucket(chars) == "l":
            p_fail, error_class = max(p_fail, 0.6), "truncated"
        if model == "m3":
            p_fail, error_class = max(p_fail, 0.25), "timeout" if p_fail < 0.25 else error_class
        failed = rng.random() < p_fail
        ttft = 80 + 0.4 * prompt_tokens + rng.gauss(0, 40) if model == "m2" else rng.uniform(100, 600)
        rows.append(
            {
                "team": team,
                "user": user,
                "model_name": model,
                "feature": feature,
                "template_version": template,
                "input_chars": chars,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 0 if failed else 64,
                "outcome": "error" if failed else "ok",
                "error_class": error_class if failed else "",
                "schema_name": "TaskList" if feature.startswith("planning") else "",
                "role": "main",
                "ttft_ms": None if failed else max(1.0, ttft),
                "total_ms": None if failed else ttft + 500,
            }
        )
    calls = bulk_calls(rows)
    votes = []
    for i, call in enumerate(calls):
        if call.outcome != "ok" or rng.random() > 0.4:
            continue
        p_down = 0.75 if (call.model_name == "m1" and call.feature == "research.summarize") else 0.2
        votes.append(
            Feedback(
                team=team,
                user=user,
                feature=call.feature,
                target=f"t:{i}",
                call=call,
                rating=-1 if rng.random() < p_down else 1,
            )
        )
    Feedback.objects.bulk_create(votes)


def key(kind: str, dims: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return kind, tuple(sorted(dims.items()))


def test_z_test_and_correlation_match_known_values() -> None:
    t = stats.two_proportion_z(30, 100, 10, 100)
    assert t.z == pytest.approx(3.5355, abs=1e-3)  # (0.3-0.1)/sqrt(0.2*0.8*0.02)
    assert t.p_value == pytest.approx(2.03e-4, rel=0.02)
    assert t.ratio == pytest.approx(3.0)
    c = stats.pearson([1, 2, 3, 4, 5], [2, 4, 6, 8, 10.5])
    assert c.r > 0.99 and c.slope == pytest.approx(2.1, abs=0.05)


def test_planted_patterns_are_found_with_precision_and_recall(trio: Trio) -> None:
    synthetic_ledger(trio.team, trio.owner)
    drafts = patterns.detect(trio.team, until=timezone.now() + timezone.timedelta(seconds=1))
    found = {key(d.kind, d.dims) for d in drafts}
    true_positives = found & GROUND_TRUTH
    precision = len(true_positives) / len(found) if found else 0.0
    recall = len(true_positives) / len(GROUND_TRUTH)
    assert precision >= 0.75, f"precision {precision:.2f}; found {sorted(found)}"
    assert recall >= 0.75, f"recall {recall:.2f}; missed {sorted(GROUND_TRUTH - found)}"
    for d in drafts:
        assert 0 <= d.p_value < 1e-3 and d.summary and d.evidence


def test_pattern_job_stores_findings_with_recommendations_and_is_idempotent(trio: Trio) -> None:
    for name in MODELS:
        chat_model(name)
    synthetic_ledger(trio.team, trio.owner, n=2400, seed=11)
    job = job_create(
        team=trio.team,
        kind="analytics.patterns",
        title="Patterns",
        created_by=trio.owner,
        params={"scope": trio.team.slug},
    )
    patterns_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.percent == 100 and job.result["findings"] >= 3
    findings = Finding.objects.filter(team=trio.team)
    assert findings.count() == job.result["findings"]
    assert Recommendation.objects.filter(finding__team=trio.team).count() == findings.count()
    switch = Recommendation.objects.filter(finding__subject="model=m2, feature=planning.expand").first()
    assert switch is not None and switch.action == "switch_role" and switch.params["model"] in {"m1", "m3"}
    split = Recommendation.objects.filter(finding__subject="feature=planning.parse_prd, size=l").first()
    assert split is not None and split.action == "split_prd" and split.params["setting"]["value"] == 4000
    ttft = Recommendation.objects.filter(finding__kind="ttft_context").first()
    assert ttft is not None and ttft.action == "lower_context"
    before = set(findings.values_list("pk", flat=True))
    services.patterns_run(team=trio.team)  # again: same findings updated, none duplicated
    assert set(Finding.objects.filter(team=trio.team).values_list("pk", flat=True)) == before
    patterns_job(job.pk)  # re-delivered task of a finished job: no-op
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED


def test_nightly_job_covers_the_site_and_each_team_and_checks_applied_changes(trio: Trio) -> None:
    from analytics.tasks import patterns_nightly

    synthetic_ledger(trio.team, trio.owner, n=1500, seed=5)
    first = patterns_nightly()
    site_wide = Finding.objects.filter(team__isnull=True).count()
    per_team = Finding.objects.filter(team=trio.team).count()
    assert site_wide >= 3 and per_team >= 3 and first["findings"] == site_wide + per_team
    assert not Finding.objects.filter(team=trio.other_team).exists()  # no calls, no findings
    rec = Recommendation.objects.filter(finding__team=trio.team).exclude(action="advisory").first()
    assert rec is not None
    services.recommendation_apply(recommendation=rec, user=trio.owner)
    assert patterns_nightly()["evaluated"] == 1
    rec.refresh_from_db()
    assert rec.evaluation["verdict"] == "too early" and rec.evaluated_at is not None
    assert Finding.objects.get(pk=rec.finding_id).status == "applied"  # a re-run keeps the decision
