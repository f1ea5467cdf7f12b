"""Redis and PostgreSQL restarts while the app runs, on this test session's own embedded servers.

The servers live under DATA_DIR (``taskmaster.embedded``); each test stops one, looks at what
callers and health checks see during the outage, starts it again with the project's own
starter, and shows that the running workers pick up the next call and the next job.
Every test restores the server in ``finally``, so the rest of the suite runs on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.db import OperationalError, connections
from django.test import Client

from recovery import classify, services
from recovery.models import AlertChannel, AlertSent, Cause, Incident
from recovery.tasks import alerts_send
from taskmaster import embedded, health
from taskmaster.env import data_dir
from taskmaster.llm import CallContext, cancel, generate
from taskmaster.llm.errors import BrokerUnavailable
from taskmaster.llm.models import LLMCall
from tests.conftest import ROOT, Workers, _wait_for_workers, subprocess_env

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
    reason="restarts the embedded servers; servers given by DATABASE_URL/REDIS_URL are not the suite's to stop",
)

HI = [{"role": "user", "content": "Say hi."}]


def _ctx(feature: str) -> CallContext:
    return CallContext(feature=feature)


def _workers_back(timeout: float = 60) -> None:
    """Both workers answer a ping again (this process's own broker connections may be stale at first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _wait_for_workers(["inference", "jobs"], timeout=3)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _a_job_runs(incident: Incident) -> None:
    """A task on the jobs worker reads and writes the database (an alert to a channel with no destination)."""
    AlertChannel.objects.create(name="restart probe", min_severity=incident.severity)
    alerts_send.delay(incident.pk)
    deadline = time.monotonic() + 60
    while not AlertSent.objects.filter(incident=incident).exists():
        assert time.monotonic() < deadline, "the jobs worker did not run the task after the restart"
        time.sleep(0.3)


@pytest.fixture
def data() -> Iterator[Path]:
    path = data_dir()
    assert embedded.running(path) == {"postgres": True, "redis": True}
    yield path
    # Whatever happened above, later tests need both servers.
    if not embedded.running(path)["redis"]:
        embedded._start_redis(path)
    if not embedded.running(path)["postgres"]:
        _start_postgres(path)
        _drop_dead_connections()


def _drop_dead_connections() -> None:
    """Forget the connections the stopped server closed, here and in asgiref's one thread for async ORM use.

    Outside a request nothing health-checks them, so later tests would get "connection already closed".
    """
    connections.close_all()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


def _start_postgres(path: Path) -> None:
    # In a fresh process: pgserver caches its server handle per process, so this process's
    # handle would not start the server again.
    env = {k: v for k, v in subprocess_env().items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("TASKMASTER_EMBEDDED_CHILD", None)
    code = f"from pathlib import Path; from taskmaster import embedded; embedded._start_postgres(Path({str(path)!r}))"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)


def test_a_redis_restart_fails_the_call_in_flight_cleanly_and_the_next_call_and_job_work(
    llm: Workers, data: Path
) -> None:
    generate(HI, max_tokens=2, context=_ctx("test.warm"))
    started = threading.Event()
    outcome: dict[str, Any] = {}

    async def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "llm.tokens":
            outcome["request_id"] = event["request_id"]
            started.set()

    def in_flight() -> None:
        prompt = [{"role": "user", "content": "Count from 1 to 100, one number per line."}]
        try:
            outcome["completion"] = generate(
                prompt, max_tokens=400, on_event=on_event, context=_ctx("test.redis.flight")
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=in_flight, daemon=True)
    thread.start()
    assert started.wait(120), "the in-flight call never started"
    embedded._stop_redis(data)
    try:
        assert "connecting to" in (health.check_redis() or "")
        # A new call fails at once, with an error that names the broker and is diagnosed as such.
        began = time.monotonic()
        with pytest.raises(BrokerUnavailable) as down:
            generate(HI, max_tokens=2, context=_ctx("test.redis.down"))
        assert time.monotonic() - began < 10
        assert "redis.sock" in str(down.value) and classify.cause_of_exception(down.value) == Cause.BROKER_UNAVAILABLE
        thread.join(60)
        assert not thread.is_alive(), "the in-flight call hung instead of failing"
    finally:
        embedded._start_redis(data)
    # The caller could not withdraw its request while the broker was down; the broker may hand the
    # unacknowledged message out again after the restart, and a withdrawn request is dropped unanswered.
    cancel(outcome["request_id"])
    # The call in flight lost its reply channel: a clear error, diagnosed as the broker, never a half answer.
    error = outcome.get("error")
    assert "completion" not in outcome and error is not None
    assert classify.cause_of_exception(error) == Cause.BROKER_UNAVAILABLE, repr(error)
    # The worker recorded the failure; the ledger hook filed it as a broker outage.
    deadline = time.monotonic() + 20
    while not (incident := Incident.objects.filter(feature="test.redis.flight").first()):
        assert time.monotonic() < deadline, list(LLMCall.objects.values_list("feature", "outcome", "error_message"))
        time.sleep(0.3)
    assert incident.cause == Cause.BROKER_UNAVAILABLE
    flight = LLMCall.objects.get(feature="test.redis.flight")
    assert flight.outcome == "error" and incident.evidence.get().call_id == str(flight.pk)
    assert not LLMCall.objects.filter(feature="test.redis.down").exists()  # nothing was enqueued

    _workers_back()
    completion = generate(HI, max_tokens=4, context=_ctx("test.redis.after"))
    assert completion.text and LLMCall.objects.get(pk=completion.request_id).outcome == "ok"
    _a_job_runs(incident)
    # One ledger row for the call that was in flight: no second answer was ever recorded for it.
    assert LLMCall.objects.filter(feature="test.redis.flight").count() == 1


def test_a_postgres_restart_is_reported_while_it_lasts_and_the_next_call_and_job_work(llm: Workers, data: Path) -> None:
    generate(HI, max_tokens=2, context=_ctx("test.warm"))
    embedded._stop_postgres(data)
    try:
        assert health.check_database() is not None
        response = Client().get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert "database" in body["failing"] and "PGSQL" in body["checks"]["database"]["error"]
        assert body["checks"]["redis"]["ok"]
        # /readyz is liveness only (the process answers); it stays 200 by design.
        assert Client().get("/readyz").status_code == 200
        with pytest.raises(OperationalError) as down:
            generate(HI, max_tokens=2, context=_ctx("test.pg.down"))
        assert classify.cause_of_exception(down.value) == Cause.DATABASE_UNAVAILABLE, repr(down.value)
    finally:
        _start_postgres(data)
        _drop_dead_connections()
    assert health.check_database() is None
    assert Client().get("/healthz").json()["checks"]["database"] == {"ok": True}
    # The inference worker's old connection died with the server: the next call still lands in the ledger.
    completion = generate(HI, max_tokens=4, context=_ctx("test.pg.after"))
    assert completion.text and LLMCall.objects.get(pk=completion.request_id).outcome == "ok"
    assert not LLMCall.objects.filter(feature="test.pg.down").exists()
    # The failed caller's error, filed now that there is a database to file it in, reads as the outage.
    incident = services.incident_record(
        cause=classify.cause_of_exception(down.value), team_id=None, feature="test.pg.down", message=str(down.value)
    )
    assert incident.cause == Cause.DATABASE_UNAVAILABLE
    _a_job_runs(incident)
