"""Dashboard aggregates on a seeded ledger give exact numbers (computed in SQL)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from analytics import selectors
from taskmaster.models import Feedback
from tests.analytics.seed import make_call
from tests.conftest import Trio


def percentile_cont(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@pytest.fixture
def seeded(trio: Trio) -> dict[str, object]:
    now = timezone.now()
    t_old, t_new = now - timedelta(hours=3), now - timedelta(minutes=1)
    ttfts_a = [100.0, 200.0, 300.0, 400.0]
    calls = []
    for i, ttft in enumerate(ttfts_a):
        calls.append(
            make_call(
                team=trio.team,
                user=trio.owner,
                model_name="model-a",
                feature="research.answer",
                prompt_tokens=100,
                completion_tokens=10 * (i + 1),
                ttft_ms=ttft,
                total_ms=ttft * 10,
                tokens_per_s=20.0,
                queue_wait_ms=5.0,
                at=t_old,
            )
        )
    calls.append(
        make_call(
            team=trio.team,
            user=trio.member,
            model_name="model-b",
            feature="planning.parse_prd",
            prompt_tokens=1000,
            completion_tokens=0,
            ttft_ms=None,
            total_ms=50.0,
            outcome="error",
            error_class="timeout",
            queue_wait_ms=15.0,
            at=t_new,
        )
    )
    calls.append(
        make_call(
            team=trio.team,
            user=trio.member,
            model_name="model-b",
            feature="planning.parse_prd",
            prompt_tokens=500,
            completion_tokens=50,
            ttft_ms=1000.0,
            total_ms=2000.0,
            tokens_per_s=40.0,
            queue_wait_ms=25.0,
            at=t_new,
        )
    )
    # Another team's call must never show up in this team's numbers.
    make_call(team=trio.other_team, user=trio.outsider, model_name="model-a", prompt_tokens=9999, at=t_new)
    Feedback.objects.create(
        team=trio.team, user=trio.owner, feature="research.answer", target="x:1", rating=1, call=calls[0]
    )
    Feedback.objects.create(
        team=trio.team, user=trio.member, feature="research.answer", target="x:1", rating=-1, call=calls[1]
    )
    return {"now": now, "ttfts_a": ttfts_a, "t_old": t_old, "t_new": t_new}


def test_summary_is_exact(trio: Trio, seeded: dict[str, object]) -> None:
    scope = selectors.Scope(team=trio.team, period="24h")
    s = selectors.summary(scope)
    assert s["calls"] == 6
    assert s["errors"] == 1
    assert s["error_rate"] == pytest.approx(1 / 6)
    assert s["prompt_tokens"] == 4 * 100 + 1000 + 500
    assert s["completion_tokens"] == 10 + 20 + 30 + 40 + 0 + 50
    ttfts = [100.0, 200.0, 300.0, 400.0, 1000.0]
    assert s["ttft_p50"] == pytest.approx(percentile_cont(ttfts, 0.5)) == 300.0
    assert s["ttft_p95"] == pytest.approx(percentile_cont(ttfts, 0.95))
    totals = [1000.0, 2000.0, 3000.0, 4000.0, 50.0, 2000.0]
    assert s["latency_p50"] == pytest.approx(percentile_cont(totals, 0.5))
    assert s["latency_p95"] == pytest.approx(percentile_cont(totals, 0.95))
    assert s["tokens_per_s"] == pytest.approx((20.0 * 4 + 40.0) / 5)
    assert s["queue_wait_avg"] == pytest.approx((5.0 * 4 + 15.0 + 25.0) / 6)


def test_breakdowns_per_model_feature_user_and_error_class(trio: Trio, seeded: dict[str, object]) -> None:
    scope = selectors.Scope(team=trio.team, period="24h")
    by_model = {r["key"]: r for r in selectors.breakdown(scope, "model")}
    assert set(by_model) == {"model-a", "model-b"}
    a, b = by_model["model-a"], by_model["model-b"]
    assert (a["calls"], a["errors"], a["up"], a["down"]) == (4, 0, 1, 1)
    assert a["ttft_p50"] == pytest.approx(250.0)
    assert a["approval"] == pytest.approx(0.5)
    assert (b["calls"], b["errors"], b["error_rate"]) == (2, 1, 0.5)
    assert b["ttft_p95"] == pytest.approx(1000.0)  # the failed call has no TTFT: percentile ignores NULL
    by_user = {r["key"]: r["calls"] for r in selectors.breakdown(scope, "user")}
    assert by_user == {"owner": 4, "member": 2}
    by_feature = {r["key"]: r["tokens"] for r in selectors.breakdown(scope, "feature")}
    assert by_feature == {"research.answer": 400 + 100, "planning.parse_prd": 1000 + 500 + 50}
    errors = {r["key"]: r["errors"] for r in selectors.breakdown(scope, "error_class")}
    assert errors["timeout"] == 1


def test_timeseries_hour_buckets(trio: Trio, seeded: dict[str, object]) -> None:
    scope = selectors.Scope(team=trio.team, period="24h", bucket="hour")
    rows = {r["t"]: r for r in selectors.timeseries(scope)}
    old = seeded["t_old"].replace(minute=0, second=0, microsecond=0)  # type: ignore[attr-defined]
    new = seeded["t_new"].replace(minute=0, second=0, microsecond=0)  # type: ignore[attr-defined]
    assert rows[old]["calls"] == 4 and rows[old]["latency_p50"] == pytest.approx(2500.0)
    assert rows[new]["calls"] == 2 and rows[new]["errors"] == 1
    ticks = selectors.buckets(scope)
    assert old in ticks and new in ticks and len(ticks) in {24, 25}


def test_site_admin_sees_all_teams(trio: Trio, seeded: dict[str, object]) -> None:
    assert selectors.summary(selectors.Scope(team=None, period="24h"))["calls"] == 7


def test_csv_export_matches_the_breakdown(trio: Trio, seeded: dict[str, object], client: Client) -> None:
    client.force_login(trio.member)
    response = client.get("/analytics/export/model.csv", {"team": "alpha", "period": "24h"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_model = {r["model"]: r for r in rows}
    assert by_model["model-a"]["calls"] == "4" and by_model["model-b"]["errors"] == "1"
    assert float(by_model["model-a"]["ttft_p50"]) == pytest.approx(250.0)
    assert client.get("/analytics/export/nonsense.csv").status_code == 400
    series = client.get("/analytics/export/time.csv", {"team": "alpha"}).content.decode().splitlines()
    assert series[0].startswith("bucket_start,calls") and len(series) == 3
