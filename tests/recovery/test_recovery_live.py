"""Injected failures on the real workers and default models: diagnosed, then recovered or failed cleanly.

Every call below goes through ``taskmaster.llm.generate`` exactly as feature code does; the
recovery handler registered by the app decides the retries. Prompts are tiny and budgets small.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from recovery import faults
from recovery.models import Cause, Incident, Recovery, RecoveryStep
from taskmaster.llm import CallContext, LLMError, OutputTruncated, generate, queueing
from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.llm.models import LLMCall, RoleDefault
from tests.conftest import Workers

HI = [{"role": "user", "content": "Say hi."}]


class Pair(BaseModel):
    words: list[Annotated[str, Field(max_length=20)]] = Field(min_length=1, max_length=2)


class Long(BaseModel):
    """The grammar forces a few hundred tokens, so the kill lands mid-generation."""

    items: list[Annotated[str, Field(min_length=8, max_length=16)]] = Field(min_length=30, max_length=30)


def _ctx(feature: str) -> CallContext:
    return CallContext(feature=feature)


def _settled(feature: str, timeout: float = 15) -> Recovery:
    """The recovery of ``feature``'s failure once its last step is settled (the ledger hook may run in a worker)."""
    deadline = time.monotonic() + timeout
    while True:
        recovery = Recovery.objects.filter(incident__feature=feature).select_related("incident").latest("failed_at")
        if recovery.outcome != Recovery.Outcome.RUNNING or time.monotonic() > deadline:
            return recovery
        time.sleep(0.2)


def _steps(recovery: Recovery) -> list[tuple[str, str]]:
    return list(recovery.steps.order_by("number").values_list("action", "outcome"))


def test_truncated_output_is_recovered_by_raising_the_token_budget(llm: Workers) -> None:
    completion = generate(HI, schema=Pair, context=_ctx("test.truncated"), **faults.truncating_kwargs())
    assert isinstance(completion.parsed, Pair)
    recovery = _settled("test.truncated")
    assert recovery.incident.cause == Cause.TRUNCATED and recovery.outcome == "recovered"
    assert _steps(recovery) == [("raise_tokens", RecoveryStep.Outcome.OK)]
    assert recovery.steps.get().call_id == completion.request_id
    # Measured, not timed here: the 30 s target is a figure for bench/, and tests share a loaded machine.
    assert recovery.seconds is not None and recovery.seconds > 0
    failed = LLMCall.objects.get(pk=recovery.first_call_id)
    assert failed.error_class == "truncated"
    assert LLMCall.objects.get(pk=completion.request_id).metadata["recovery_id"] == recovery.pk


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_a_broken_model_file_switches_to_the_fallback_model(llm: Workers, problem: str) -> None:
    broken = faults.broken_model(name=f"broken-{problem}", problem=problem)
    RoleDefault.objects.filter(role="main").update(model=broken)
    completion = generate(HI, max_tokens=8, context=_ctx(f"test.file.{problem}"))
    assert completion.model == CHAT_NAME and completion.text
    recovery = _settled(f"test.file.{problem}")
    incident = recovery.incident
    assert incident.cause == Cause.MODEL_FILE and incident.model_name == broken.name
    assert ("missing" if problem == "missing" else "corrupt") in incident.message
    assert _steps(recovery) == [("fallback_model", RecoveryStep.Outcome.OK)]
    assert recovery.steps.get().params["model"] == CHAT_NAME
    broken.refresh_from_db()
    assert not broken.available  # the worker marked it, so routing avoids it from now on


def test_context_overflow_is_recovered_by_shrinking_the_input(llm: Workers) -> None:
    small = faults.small_context_model(name="small-context", context_length=384)
    ctx_len = small.context_length
    messages = faults.oversized_messages(context_length=ctx_len)
    completion = generate(messages, model=small.name, max_tokens=8, context=_ctx("test.overflow"))
    assert completion.usage.prompt_tokens < ctx_len
    recovery = _settled("test.overflow")
    assert recovery.incident.cause == Cause.CONTEXT_OVERFLOW and recovery.outcome == "recovered"
    actions = _steps(recovery)
    assert actions[-1] == ("shrink_input", RecoveryStep.Outcome.OK) and {a for a, _ in actions} == {"shrink_input"}
    first = recovery.steps.order_by("number").first()
    assert first is not None and first.params["chars_after"] < first.params["chars_before"]
    assert recovery.incident.evidence.first().input_chars > ctx_len  # type: ignore[union-attr]


def _kill_when_started(llm: Workers, delay: float = 1.0) -> threading.Thread:
    """kill -9 the inference pool once a worker has taken the next request off the queue (mid-generation).

    A call's channel group (``llm.req.<id>``) exists from before it is enqueued until it ends, so
    the request id is found without racing a fast worker; once the id has left the queue's
    waiting set a worker has started it.
    """
    r = queueing._redis()
    waiting_key = f"llmq:llm.{CHAT_NAME}"
    groups_before = set(r.keys("asgi:group:llm.req.*"))

    def killer() -> None:
        deadline = time.monotonic() + 120
        request = None
        while time.monotonic() < deadline:
            if request is None:
                new = set(r.keys("asgi:group:llm.req.*")) - groups_before
                if new:
                    key = next(iter(new))
                    request = (key.decode() if isinstance(key, bytes) else key).rsplit("llm.req.", 1)[1]
                    time.sleep(0.05)  # the id is added to the waiting set right after the group
            elif r.zscore(waiting_key, request) is None:
                break  # dequeued: a worker started it
            time.sleep(0.01)
        time.sleep(delay)
        faults.kill_pids(llm.child_pids("inference"))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def test_a_killed_worker_is_rerouted_or_the_call_fails_cleanly(llm: Workers, settings: Any) -> None:
    settings.RECOVERY_REROUTE_TIMEOUT_S = 40
    generate(HI, max_tokens=2, context=_ctx("test.warm"))  # the model is loaded before the timed part
    killer = _kill_when_started(llm)
    prompt = [{"role": "user", "content": "Name thirty fruits."}]
    try:
        completion = generate(prompt, schema=Long, max_tokens=700, context=_ctx("test.killed"))
    except LLMError as exc:
        completion, error = None, exc
    killer.join()
    recovery = _settled("test.killed")
    assert recovery.incident.cause == Cause.WORKER_LOST
    assert LLMCall.objects.get(pk=recovery.first_call_id).error_class == "worker_lost"
    assert _steps(recovery)[0][0] == "reroute"
    if completion is not None:
        assert isinstance(completion.parsed, Long) and recovery.outcome == "recovered"
        assert _steps(recovery)[-1] == ("reroute", RecoveryStep.Outcome.OK)
    else:
        # The re-sent request was not taken up in time: a clear error, and the recovery says so.
        assert "Automatic recovery tried: re-route to another worker" in str(error)
        assert recovery.outcome == "failed" and _steps(recovery)[-1][0] == "give_up"
    # Never two successful generations for one call.
    assert LLMCall.objects.filter(feature="test.killed", outcome="ok").count() <= 1


def test_an_exhausted_plan_fails_the_call_with_a_clear_message(llm: Workers) -> None:
    broken = faults.broken_model(name="broken-main", problem="missing")
    also_broken = faults.broken_model(name="broken-fallback", problem="missing")
    RoleDefault.objects.filter(role="main").update(model=broken)
    RoleDefault.objects.filter(role="fallback").update(model=also_broken)
    with pytest.raises(LLMError) as err:
        generate(HI, max_tokens=8, context=_ctx("test.exhausted"))
    message = str(err.value)
    assert "missing" in message and "switch to the fallback model" in message
    recovery = _settled("test.exhausted")
    assert recovery.outcome == "failed" and recovery.incident.status == Incident.Status.FAILED
    assert _steps(recovery) == [
        ("fallback_model", RecoveryStep.Outcome.FAILED),
        ("give_up", RecoveryStep.Outcome.GAVE_UP),
    ]
    # The fallback's own failure is an incident of its own (another model, another fingerprint).
    assert Incident.objects.filter(cause=Cause.MODEL_FILE, model_name="broken-fallback").exists()


def test_recover_false_diagnoses_the_failure_but_never_retries_it(llm: Workers) -> None:
    with pytest.raises(OutputTruncated):
        generate(HI, schema=Pair, context=_ctx("test.no_recover"), recover=False, **faults.truncating_kwargs())
    incident = Incident.objects.get(feature="test.no_recover")
    assert incident.cause == Cause.TRUNCATED and incident.count == 1
    assert not Recovery.objects.filter(incident=incident).exists()
    assert LLMCall.objects.filter(feature="test.no_recover").count() == 1
