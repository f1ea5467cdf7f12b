"""Diagnosis: every failure class becomes the right incident; grouping, evidence, plans and limits."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from django.db import OperationalError

from recovery import classify, faults, plans, services
from recovery.models import Cause, Evidence, Incident, Recovery, RecoveryStep
from taskmaster.llm import CallContext, RecoveryAttempt
from taskmaster.llm import errors as E
from taskmaster.llm.ledger import CallRecord
from taskmaster.qa import QAFailed
from taskmaster.services import job_create, job_fail
from tests.conftest import Trio

pytestmark = pytest.mark.django_db

CASES = [
    (E.ModelFileError("model file faults/x.gguf is missing"), Cause.MODEL_FILE),
    (E.ModelUnavailable("model x is disabled"), Cause.MODEL_UNAVAILABLE),
    (E.OutOfMemory("out of memory loading x"), Cause.OUT_OF_MEMORY),
    (E.ContextOverflow("the prompt does not fit"), Cause.CONTEXT_OVERFLOW),
    (E.OutputTruncated("cut off"), Cause.TRUNCATED),
    (E.SchemaValidationError("bad json"), Cause.SCHEMA_VALIDATION),
    (E.LLMTimeout("no result within 5 s"), Cause.TIMEOUT),
    (E.WorkerLost("stopped responding"), Cause.WORKER_LOST),
    (E.LLMError("RuntimeError: something odd"), Cause.UNKNOWN),
    # What a worker records when Redis goes away mid-generation (error class "unknown").
    (E.LLMError("ConnectionError: Error 2 connecting to /tmp/x/redis.sock. No such file."), Cause.BROKER_UNAVAILABLE),
    (E.LLMError("lost the reply channel for m: ConnectionError('closed')"), Cause.BROKER_UNAVAILABLE),
]


def _fail_call(exc: E.LLMError, *, feature: str = "test.diag", model: str = "m1", team_id: int | None = None) -> str:
    request_id = str(uuid.uuid4())
    CallRecord(
        request_id=request_id,
        context=CallContext(feature=feature, team_id=team_id),
        kind="chat",
        model_name=model,
        input_chars=123,
    ).fail(exc)
    return request_id


@pytest.mark.parametrize(("exc", "cause"), CASES, ids=[c for _, c in CASES])
def test_each_failed_ledger_call_is_diagnosed_with_its_evidence(
    exc: E.LLMError, cause: str, trio: Trio, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        call_id = _fail_call(exc, team_id=trio.team.pk)
    incident = Incident.objects.get()
    assert incident.cause == cause and incident.team == trio.team and incident.count == 1
    assert incident.feature == "test.diag" and incident.model_name == "m1" and incident.message == str(exc)
    evidence = incident.evidence.get()
    assert evidence.call_id == call_id and evidence.input_chars == 123 and evidence.error_class == exc.error_class
    assert plans.plan_for(cause)[-1] == "give_up"


def test_failures_join_the_open_incident_of_their_fingerprint(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = _fail_call(E.WorkerLost("lost 1"))
        _fail_call(E.WorkerLost("lost 2"))
        _fail_call(E.WorkerLost("lost 3"), model="m2")
    grouped = Incident.objects.get(model_name="m1")
    assert grouped.count == 2 and grouped.message == "lost 2" and grouped.first_seen <= grouped.last_seen
    assert Incident.objects.get(model_name="m2").count == 1
    # The same call reported twice (worker hook and caller's handler) is filed once.
    call = Evidence.objects.get(call_id=first)
    from taskmaster.llm.models import LLMCall

    services.incident_from_call(call=LLMCall.objects.get(pk=first))
    assert Incident.objects.get(pk=call.incident_id).count == 2
    # Once resolved, the next failure opens a new incident.
    Incident.objects.filter(pk=grouped.pk).update(status=Incident.Status.RESOLVED)
    with django_capture_on_commit_callbacks(execute=True):
        _fail_call(E.WorkerLost("lost 4"))
    assert Incident.objects.filter(model_name="m1").count() == 2


def test_cancelled_and_successful_calls_are_not_incidents(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _fail_call(E.Cancelled("stop pressed"))
        CallRecord(request_id=str(uuid.uuid4()), context=CallContext(feature="x"), kind="chat", model_name="m").ok()
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            'django.db.utils.OperationalError: connection to server on socket "/tmp/x/.s.PGSQL.5432" failed',
            Cause.DATABASE_UNAVAILABLE,
        ),
        ("redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379.", Cause.BROKER_UNAVAILABLE),
        (str(QAFailed("planning.tasks", ["task 2 has an empty title"])), Cause.QA_FAILED),
        ("HTTP 429 Too Many Requests", Cause.RATE_LIMITED),
        ("ValueError: what", Cause.UNKNOWN),
    ],
)
def test_failed_jobs_are_diagnosed_from_their_error(
    error: str, cause: str, trio: Trio, django_capture_on_commit_callbacks: Any
) -> None:
    job = job_create(team=trio.team, kind="planning.parse_prd", title="Parse PRD")
    with django_capture_on_commit_callbacks(execute=True):
        job_fail(job_id=job.pk, error=error)
    incident = Incident.objects.get()
    assert incident.cause == cause and incident.team == trio.team and incident.feature == "planning.parse_prd"
    assert incident.evidence.get().job_id == job.pk
    # A re-delivered failure of the same job is not counted twice.
    services.incident_from_job(job_id=job.pk)
    assert Incident.objects.get().count == 1


def test_exceptions_are_classified_by_type() -> None:
    assert classify.cause_of_exception(OperationalError("server closed")) == Cause.DATABASE_UNAVAILABLE
    assert classify.cause_of_exception(redis.exceptions.ConnectionError("down")) == Cause.BROKER_UNAVAILABLE
    assert classify.cause_of_exception(E.WorkerLost("x")) == Cause.WORKER_LOST
    assert classify.cause_of_exception(KeyError("k")) == Cause.UNKNOWN


def test_an_empty_retrieval_is_recorded(trio: Trio, django_capture_on_commit_callbacks: Any) -> None:
    from research.answer import REFUSAL
    from research.models import Message, Thread

    thread = Thread.objects.create(team=trio.team, owner=trio.owner)
    with django_capture_on_commit_callbacks(execute=True):
        Message.objects.create(
            thread=thread, role="assistant", kind=Message.Kind.REFUSAL, content=REFUSAL, standalone_query="What is X?"
        )
    incident = Incident.objects.get()
    assert incident.cause == Cause.RETRIEVAL_EMPTY and incident.team == trio.team and "What is X?" in incident.message
    assert plans.plan_for(incident.cause) == ["give_up"]


def test_fault_injection_is_refused_in_production(settings: Any) -> None:
    faults.require()  # on for these tests (conftest)
    settings.DEBUG, settings.ENVIRONMENT = False, "production"
    with pytest.raises(faults.FaultInjectionRefused, match="production"):
        faults.oversized_messages(context_length=10)
    settings.ENVIRONMENT, settings.FAULT_INJECTION = "development", False
    with pytest.raises(faults.FaultInjectionRefused, match="off"):
        faults.truncating_kwargs()


def _attempt(exc: E.LLMError, n: int = 1, **kwargs: Any) -> RecoveryAttempt:
    ctx = kwargs.pop("context", CallContext(feature="test.plan"))
    return RecoveryAttempt(
        error=exc,
        attempt=n,
        messages=[{"role": "user", "content": "hi"}],
        kwargs={"max_tokens": 8, **kwargs},
        context=ctx,
        streamed=kwargs.pop("streamed", False),
    )


def test_the_handler_follows_the_plan_and_gives_up_with_a_clear_message() -> None:
    change = plans._decide(_attempt(E.OutputTruncated("cut off at max_tokens=8")))
    assert change is not None and change["max_tokens"] == 64
    recovery = Recovery.objects.get()
    step = recovery.steps.get()
    assert step.action == "raise_tokens" and step.params["max_tokens"] == 64
    assert recovery.incident.status == "recovering"
    # The next failure of the same call continues the same recovery, from the next step.
    again = plans._decide(_attempt(E.OutputTruncated("cut again"), 2, max_tokens=64, context=change["context"]))
    assert again is not None and again["max_tokens"] == 256
    assert list(recovery.steps.values_list("action", "outcome")) == [
        ("raise_tokens", RecoveryStep.Outcome.FAILED),
        ("raise_tokens", RecoveryStep.Outcome.PENDING),
    ]
    err = E.OutputTruncated("cut a third time")
    # No model is registered in this test: the fallback step cannot apply, so the plan is exhausted.
    assert plans._decide(_attempt(err, 3, max_tokens=256, context=again["context"])) is None
    recovery.refresh_from_db()
    assert recovery.outcome == "failed" and recovery.incident.status == "failed" and recovery.seconds is not None
    assert "recovery plan is exhausted" in str(err) and "raise the token budget" in str(err)
    assert recovery.steps.last().action == "give_up"  # type: ignore[union-attr]


def test_streamed_calls_and_spent_limits_are_not_retried(settings: Any) -> None:
    err: E.LLMError = E.WorkerLost("stopped responding")
    assert plans._decide(_attempt(err, streamed=True)) is None
    assert "already shown" in str(err)
    err = E.LLMTimeout("no result")
    assert plans._decide(_attempt(err, n=4)) is None
    assert "after 3 automatic retries" in str(err)
    settings.RECOVERY_BUDGET_S = 0
    err = E.LLMTimeout("no result again")
    assert plans._decide(_attempt(err)) is None
    assert "budget" in str(err)
    assert Recovery.objects.filter(outcome="failed").count() == 3


def test_shrink_drops_old_messages_then_cuts_the_longest() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a" * 1000},
        {"role": "assistant", "content": "b" * 1000},
        {"role": "user", "content": "c" * 3000},
    ]
    out = plans.shrink(messages, 1500)
    assert [m["role"] for m in out] == ["system", "user"]
    assert out[0]["content"] == "sys" and out[1]["content"].startswith("ccc") and len(out[1]["content"]) < 1510
    assert messages[3]["content"] == "c" * 3000  # the caller's list is not modified


def test_explicit_choices_of_the_caller_are_respected() -> None:
    # No feature declared: the raw error, no retry.
    assert plans._decide(_attempt(E.OutputTruncated("cut"), context=CallContext())) is None
    assert not Recovery.objects.exists() and Incident.objects.get().cause == Cause.TRUNCATED
    # An API client's budget is its own: only a plain retry is allowed, so a truncation is not retried.
    err = E.OutputTruncated("cut")
    assert plans._decide(_attempt(err, context=CallContext(feature="api"))) is None
    assert "plan is exhausted" in str(err)
    lost = plans._decide(_attempt(E.WorkerLost("lost"), context=CallContext(feature="api")))
    assert lost is not None and set(lost) == {"delay", "timeout", "context"}
