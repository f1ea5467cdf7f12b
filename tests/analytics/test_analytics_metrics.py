"""/metrics: Prometheus series, refused to anonymous callers."""

from __future__ import annotations

from django.test import Client, override_settings

from taskmaster.models import Job
from tests.analytics.seed import make_call
from tests.conftest import Trio

SERIES = [
    "taskmaster_http_requests_total",
    "taskmaster_http_request_duration_seconds_bucket",
    "taskmaster_llm_calls_total",
    "taskmaster_llm_tokens_total",
    "taskmaster_llm_errors_total",
    "taskmaster_llm_ttft_seconds_bucket",
    "taskmaster_llm_latency_seconds_bucket",
    "taskmaster_llm_queue_depth",
    "taskmaster_ingestion_jobs_running",
    "taskmaster_ingestion_items_done",
]


@override_settings(METRICS_TOKEN="s3cret-token", METRICS_ALLOWED_IPS=[])
def test_metrics_need_the_bearer_token(db: None, client: Client) -> None:
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert b"taskmaster_" not in anonymous.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=[])
def test_metrics_are_closed_by_default(db: None, client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 403 and b"METRICS_TOKEN" in response.content


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=["10.1.2.3"])
def test_allowed_addresses(db: None, client: Client) -> None:
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.4").status_code == 403


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_show_the_series(trio: Trio, client: Client) -> None:
    make_call(
        team=trio.team,
        model_name="model-a",
        feature="research.answer",
        prompt_tokens=100,
        completion_tokens=20,
        ttft_ms=300.0,
        total_ms=900.0,
    )
    make_call(
        team=trio.team,
        model_name="model-a",
        feature="research.answer",
        outcome="error",
        error_class="timeout",
        prompt_tokens=0,
        completion_tokens=0,
    )
    Job.objects.create(team=trio.team, kind="research.ingest", title="Ingest", status="running", done=3, total=10)
    client.get("/readyz")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").content.decode()
    for name in SERIES:
        assert name in body, name
    assert 'taskmaster_llm_calls_total{feature="research.answer",model="model-a",outcome="ok"} 1.0' in body
    assert 'taskmaster_llm_errors_total{error_class="timeout",model="model-a"} 1.0' in body
    assert 'taskmaster_llm_tokens_total{direction="prompt",feature="research.answer",model="model-a"} 100.0' in body
    assert 'taskmaster_llm_ttft_seconds_bucket{feature="research.answer",le="0.5",model="model-a"} 1.0' in body
    assert 'taskmaster_llm_ttft_seconds_bucket{feature="research.answer",le="0.25",model="model-a"} 0.0' in body
    assert "taskmaster_ingestion_items_done{job=" in body and "taskmaster_ingestion_jobs_running 1.0" in body
    assert 'taskmaster_http_requests_total{method="GET",status="200",view="readyz"}' in body
