"""Timeouts and rate limits end to end: a real LLMTimeout behind a busy worker, the API's real 429s."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from recovery import plans
from recovery.middleware import _redis
from recovery.models import Cause, Incident, Recovery, RecoveryStep
from taskmaster.api import limits
from taskmaster.api.models import UserApiLimit
from taskmaster.api.services import api_token_create
from taskmaster.celery import app as celery_app
from taskmaster.llm import CallContext, LLMTimeout, generate, queueing
from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.llm.models import LLMCall
from tests.conftest import Trio, Workers

HI = [{"role": "user", "content": "Say hi."}]
MIDDLEWARE = "recovery.middleware.RateLimitIncidentMiddleware"


def test_a_call_nobody_takes_times_out_is_retried_then_fails_cleanly(llm: Workers, settings: Any) -> None:
    generate(HI, max_tokens=2, context=CallContext(feature="test.warm"))
    # The inference worker stops taking the chat queue (as when it is stuck or gone), so the
    # call waits for certain; a busy generation is no blocker: the small model may end it early.
    queue = f"llm.{CHAT_NAME}"
    active = celery_app.control.inspect(timeout=5).active_queues() or {}
    owners = [name for name, queues in active.items() if any(q["name"] == queue for q in queues)]
    assert owners, active
    celery_app.control.cancel_consumer(queue, destination=owners, reply=True, timeout=5)
    settings.LLM_MAX_WAIT_S = 1
    began = time.monotonic()
    try:
        with pytest.raises(LLMTimeout) as err:
            generate(HI, max_tokens=4, context=CallContext(feature="test.timeout"))
    finally:
        celery_app.control.add_consumer(queue, destination=owners, reply=True, timeout=5)
    waited = time.monotonic() - began
    message = str(err.value)
    assert f"no result from {CHAT_NAME} within 1 s" in message
    assert "Automatic recovery tried: retry with backoff, retry with backoff" in message
    assert waited < plans.budget_s() + 15

    recovery = Recovery.objects.select_related("incident").get(incident__feature="test.timeout")
    assert recovery.incident.cause == Cause.TIMEOUT and recovery.outcome == Recovery.Outcome.FAILED
    steps = list(recovery.steps.order_by("number").values_list("action", "outcome"))
    assert steps[:2] == [("retry", RecoveryStep.Outcome.FAILED)] * 2 and steps[-1][0] == "give_up"
    # Giving up is bounded by the recovery budget (plus the last attempt), however loaded the machine.
    assert recovery.seconds is not None and recovery.seconds < plans.budget_s() + 10
    # The first call and each retry: a ledger row and evidence of the one incident each, none answered.
    calls = LLMCall.objects.filter(feature="test.timeout")
    assert calls.count() == recovery.incident.count == 1 + sum(action != "give_up" for action, _ in steps)
    assert set(calls.values_list("error_class", flat=True)) == {"timeout"}
    # The timed-out requests were withdrawn: once the worker is free it drops them instead of answering.
    deadline = time.monotonic() + 60
    while any(queueing.position(queue, str(pk)) is not None for pk in calls.values_list("pk", flat=True)):
        assert time.monotonic() < deadline, "the worker never took the withdrawn requests off the queue"
        time.sleep(0.3)
    time.sleep(1)
    assert not LLMCall.objects.filter(feature="test.timeout", outcome="ok").exists()


@pytest.fixture
def api_client(settings: Any, trio: Trio) -> Client:
    assert MIDDLEWARE in settings.MIDDLEWARE  # installed for real, not only in this test
    r = _redis()
    for user in (trio.owner, trio.member):
        for key in [*r.keys(f"recovery:429:{user.pk}:*"), *r.keys(f"tm:api:rpm:{user.pk}:*")]:
            r.delete(key)
    return Client()


def test_the_apis_rate_limit_answers_become_one_rate_limited_incident(trio: Trio, api_client: Client) -> None:
    UserApiLimit.objects.create(user=trio.member, requests_per_minute=1)
    secret = api_token_create(user=trio.member, name="script")[1]
    statuses = [api_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code for _ in range(6)]
    refused = statuses.count(429)
    assert refused >= 4  # 1 per minute: at most one success per minute, six calls straddle at most one boundary
    incident = Incident.objects.get(cause=Cause.RATE_LIMITED)
    assert incident.team == trio.team and incident.feature == "api"
    assert "Rate limit reached: 1 requests per minute" in incident.message
    assert f"user {trio.member.pk}" in incident.message and "told to retry after" in incident.message
    # Filed once per user, limit and minute, not once per refused request.
    assert 1 <= incident.count <= 2 < refused
    assert set(incident.evidence.values_list("error_class", flat=True)) == {"rate_limit_exceeded"}


def test_a_spent_daily_quota_is_filed_as_rate_limited_too(trio: Trio, api_client: Client) -> None:
    UserApiLimit.objects.create(user=trio.owner, daily_token_quota=50)
    limits.add_tokens(trio.owner.pk, 50)
    secret = api_token_create(user=trio.owner, name="quota")[1]
    response = api_client.post(
        "/v1/chat/completions",
        data={"model": CHAT_NAME, "messages": HI, "max_tokens": 4},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 429 and response.json()["error"]["code"] == "insufficient_quota"
    incident = Incident.objects.get(cause=Cause.RATE_LIMITED)
    assert incident.team == trio.team and "Daily token quota reached" in incident.message
    assert incident.evidence.get().error_class == "insufficient_quota"
    assert not LLMCall.objects.exists()  # refused before any model ran
    # Other API errors are not rate limits and file nothing.
    assert api_client.get("/v1/models", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert Incident.objects.count() == 1
