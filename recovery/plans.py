"""Recovery plans: each cause maps to an ordered list of actions, tried one per failed attempt.

The handler registered with ``taskmaster.llm.set_recovery`` (``recover``) runs in the
caller's process. It files the failure as an incident, picks the next applicable
action of the cause's plan and answers with the changed call arguments; the core
retries the call. The retried call carries ``recovery_id``/``recovery_step`` in its
context metadata, so its ledger row tells the ledger hook which step succeeded.

Limits: ``RECOVERY_MAX_ATTEMPTS`` retries per call and ``RECOVERY_BUDGET_S`` seconds
from the first failure; tokens already shown to someone are never generated twice.

What a caller chose explicitly is respected:

* ``generate(..., recover=False)``: diagnosed (an incident) but never retried; the caller
  owns its retries;
* a call that declares no feature (``CallContext`` default "unknown": the shell, the core's
  own runtime tests) is diagnosed but not retried: it gets the raw error;
* a call that names its ``model`` is never switched to the fallback model (the fallback is
  the *role's* fallback);
* calls on behalf of an API client or the playground (features ``api``, ``playground``) are
  only retried or re-routed as they are: their model, token budget and messages are the
  client's, not ours to change.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from recovery import classify
from recovery.models import Cause, Recovery
from taskmaster.llm import RecoveryAttempt
from taskmaster.llm.errors import ModelUnavailable
from taskmaster.llm.models import LLMCall, LLMModel

log = logging.getLogger(__name__)

RETRY, RAISE_TOKENS, SHRINK, FALLBACK, REROUTE = "retry", "raise_tokens", "shrink_input", "fallback_model", "reroute"

ACTION_LABELS = {
    RETRY: "Retry with backoff",
    RAISE_TOKENS: "Raise the token budget",
    SHRINK: "Shrink the input",
    FALLBACK: "Switch to the fallback model",
    REROUTE: "Re-route to another worker",
    "give_up": "Give up and fail with a clear message",
}

PLANS: dict[str, list[str]] = {
    Cause.TIMEOUT: [RETRY, RETRY, FALLBACK],
    Cause.DATABASE_UNAVAILABLE: [RETRY, RETRY, RETRY],
    Cause.BROKER_UNAVAILABLE: [RETRY, RETRY, RETRY],
    Cause.RATE_LIMITED: [RETRY, RETRY, RETRY],
    Cause.TRUNCATED: [RAISE_TOKENS, RAISE_TOKENS, FALLBACK],
    Cause.CONTEXT_OVERFLOW: [SHRINK, SHRINK, SHRINK],
    Cause.MODEL_FILE: [FALLBACK],
    Cause.MODEL_UNAVAILABLE: [FALLBACK],
    Cause.OUT_OF_MEMORY: [FALLBACK, SHRINK],
    Cause.SCHEMA_VALIDATION: [RETRY, FALLBACK],
    Cause.WORKER_LOST: [REROUTE, REROUTE, FALLBACK],
    Cause.UNKNOWN: [RETRY],
    # Not retried inside a call: a QA failure fails the job (nothing is applied) and an
    # empty retrieval is an answer ("nothing found"), not an error.
    Cause.QA_FAILED: [],
    Cause.RETRIEVAL_EMPTY: [],
}


VERBATIM_FEATURES = frozenset({"api", "playground"})
UNATTRIBUTED = frozenset({"", "unknown"})


def _allowed(action: str, attempt: RecoveryAttempt) -> bool:
    if attempt.context.feature in VERBATIM_FEATURES:
        return action in (RETRY, REROUTE)
    return not (action == FALLBACK and attempt.kwargs.get("model"))


def plan_for(cause: str) -> list[str]:
    return [*PLANS.get(cause, []), "give_up"]


def max_attempts() -> int:
    return int(getattr(settings, "RECOVERY_MAX_ATTEMPTS", 3))


def budget_s() -> float:
    return float(getattr(settings, "RECOVERY_BUDGET_S", 30))


def reroute_timeout_s() -> float:
    return float(getattr(settings, "RECOVERY_REROUTE_TIMEOUT_S", 120))


def backoff_s(n: int) -> float:
    return float(getattr(settings, "RECOVERY_BACKOFF_S", 1.0)) * (2 ** (n - 1))


# --- the actions ----------------------------------------------------------------------------


@dataclass
class Change:
    args: dict[str, Any]
    params: dict[str, Any]
    detail: str


def _current_model(attempt: RecoveryAttempt, call: LLMCall | None) -> LLMModel | None:
    name = attempt.kwargs.get("model") or (call.model_name if call else "")
    if name:
        return LLMModel.objects.filter(name=name).first()
    from taskmaster.llm.registry import model_for_role

    try:
        return model_for_role(attempt.kwargs.get("role", "main"))
    except ModelUnavailable:
        return None


def _chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "")) for m in messages)


def shrink(messages: list[dict[str, Any]], target_chars: int) -> list[dict[str, Any]]:
    """Drop the oldest non-system messages (keeping the last), then cut the longest message to fit."""
    out = [dict(m) for m in messages]
    while _chars(out) > target_chars:
        droppable = [i for i, m in enumerate(out[:-1]) if m.get("role") != "system"]
        if not droppable:
            break
        out.pop(droppable[0])
    excess = _chars(out) - target_chars
    if excess > 0:
        longest = max(range(len(out)), key=lambda i: len(str(out[i].get("content") or "")))
        text = str(out[longest].get("content") or "")
        keep = max(len(text) - excess, 40)
        out[longest]["content"] = text[:keep] + " […]"
    return out


def _action(action: str, n: int, attempt: RecoveryAttempt, call: LLMCall | None) -> Change | None:
    """The changed call arguments for ``action``, or None when it cannot help here."""
    model = _current_model(attempt, call)
    if action == RETRY:
        delay = backoff_s(n)
        return Change({"delay": delay}, {"delay_s": delay}, f"retry after {delay:g} s")
    if action == REROUTE:
        # The broker hands the re-sent request to whichever worker on the queue is alive.
        delay = backoff_s(1)
        # If the pool is still being replaced the re-sent request could wait for the caller's
        # full LLM_MAX_WAIT_S; a bounded wait turns that into a timeout the plan can act on.
        return Change(
            {"delay": delay, "timeout": reroute_timeout_s()},
            {"delay_s": delay, "queue": model.queue_name if model else ""},
            "re-sent on the model's queue: any live worker takes it",
        )
    if action == RAISE_TOKENS:
        old = int(attempt.kwargs.get("max_tokens", 256))
        limit = (model.context_length if model else 2048) // 2
        new = min(max(old * 4, 64), limit)
        if new <= old:
            return None
        return Change({"max_tokens": new}, {"max_tokens_before": old, "max_tokens": new}, f"max_tokens {old} → {new}")
    if action == SHRINK:
        ctx_len = model.context_length if model else 2048
        max_tokens = int(attempt.kwargs.get("max_tokens", 256))
        before = _chars(attempt.messages)
        # ~2 characters per token is pessimistic for prose, so the first cut usually fits.
        target = min(max(200, (ctx_len - max_tokens - 64) * 2), before * 2 // 3) // (2 ** (n - 1))
        shorter = shrink(attempt.messages, target)
        after = _chars(shorter)
        if after >= before:
            return None
        return Change(
            {"messages": shorter},
            {
                "chars_before": before,
                "chars_after": after,
                "messages_before": len(attempt.messages),
                "messages_after": len(shorter),
            },
            f"input {before} → {after} characters, {len(attempt.messages)} → {len(shorter)} messages",
        )
    if action == FALLBACK:
        from taskmaster.llm.registry import model_for_role

        try:
            fallback = model_for_role("fallback")
        except ModelUnavailable:
            return None
        if model is not None and fallback.pk == model.pk:
            return None
        return Change(
            {"model": fallback.name},
            {"from": model.name if model else "", "model": fallback.name},
            f"model {model.name if model else '?'} → {fallback.name}",
        )
    return None


# --- the handler ------------------------------------------------------------------------------


def _decide(attempt: RecoveryAttempt) -> dict[str, Any] | None:
    from recovery import services

    err = attempt.error
    call = LLMCall.objects.filter(pk=err.request_id).first() if err.request_id else None
    cause = classify.cause_of_exception(err)
    ctx = attempt.context
    incident = services.incident_from_call(call=call) if call is not None else None
    if incident is None:
        incident = services.incident_record(
            cause=cause,
            team_id=ctx.team_id,
            feature=ctx.feature,
            model_name=(call.model_name if call else attempt.kwargs.get("model", "")) or "",
            message=str(err),
            call_id=str(call.pk) if call else "",
            error_class=err.error_class,
            input_chars=_chars(attempt.messages),
        )
    if ctx.feature in UNATTRIBUTED or not attempt.recover:
        return None
    meta = dict(ctx.metadata)
    recovery_id = meta.get("recovery_id")
    recovery = Recovery.objects.filter(pk=int(recovery_id)).first() if recovery_id else None
    if recovery is not None and meta.get("recovery_step"):
        services.step_finish(
            step_id=int(meta["recovery_step"]),
            ok=False,
            call_id=str(err.request_id or ""),
            detail=f"{err.error_class}: {err}",
        )
    if recovery is None:
        recovery = services.recovery_start(
            incident=incident, first_call_id=str(err.request_id or ""), plan=plan_for(cause)
        )
    positions: dict[str, int] = dict(meta.get("recovery_pos") or {})

    def give_up(reason: str) -> None:
        services.recovery_give_up(recovery=recovery, reason=reason)
        tried = [ACTION_LABELS.get(s.action, s.action).lower() for s in recovery.steps.exclude(action="give_up")]
        summary = f" Automatic recovery tried: {', '.join(tried)}." if tried else ""
        err.args = (f"{err} — {reason}{summary}",)

    if attempt.streamed:
        give_up("not retried: part of the answer was already shown, a retry would show it twice.")
        return None
    if attempt.attempt > max_attempts():
        give_up(f"gave up after {max_attempts()} automatic retries.")
        return None
    elapsed = (timezone.now() - recovery.failed_at).total_seconds()
    plan = PLANS.get(cause, [])
    pos = positions.get(cause, 0)
    while pos < len(plan):
        action = plan[pos]
        pos += 1
        if not _allowed(action, attempt):
            continue
        change = _action(action, plan[:pos].count(action), attempt, call)
        if change is None:
            continue
        if elapsed + float(change.args.get("delay", 0)) > budget_s():
            give_up(f"gave up: the recovery budget of {budget_s():g} s is spent.")
            return None
        positions[cause] = pos
        step = services.step_add(
            recovery=recovery, action=action, params={"cause": cause, **change.params}, detail=change.detail
        )
        new_ctx = dataclasses.replace(
            ctx, metadata={**meta, "recovery_id": recovery.pk, "recovery_step": step.pk, "recovery_pos": positions}
        )
        return {**change.args, "context": new_ctx}
    give_up("the recovery plan is exhausted." if plan else f"no automatic recovery for {cause.replace('_', ' ')}.")
    return None


async def recover(attempt: RecoveryAttempt) -> dict[str, Any] | None:
    """The ``set_recovery`` handler; never raises (a broken handler must not hide the real error)."""
    started = time.monotonic()
    try:
        return await sync_to_async(_decide)(attempt)
    except Exception:
        log.exception(
            "recovery handler failed for %s after %.2f s", attempt.error.error_class, time.monotonic() - started
        )
        return None


def on_ledger_call(call: LLMCall) -> None:
    """Ledger hook (any process): file failed calls; settle the step a retried call belongs to."""
    from recovery import services

    try:
        step_id = (call.metadata or {}).get("recovery_step")
        if call.outcome == "error":
            services.incident_from_call(call=call)
            if step_id:
                services.step_finish(
                    step_id=int(step_id),
                    ok=False,
                    call_id=str(call.pk),
                    detail=f"{call.error_class}: {call.error_message[:500]}",
                )
        elif call.outcome == "ok" and step_id:
            cut = call.finish_reason == "length" and bool(call.schema_name)
            services.step_finish(
                step_id=int(step_id),
                ok=not cut,
                call_id=str(call.pk),
                detail="the retried call succeeded" if not cut else "output cut at max_tokens",
            )
    except Exception:
        log.exception("recovery ledger hook failed for call %s", getattr(call, "pk", "?"))


def on_job_failed(job_id: int) -> None:
    from recovery import services

    try:
        services.incident_from_job(job_id=job_id)
    except Exception:
        log.exception("recovery job hook failed for job %s", job_id)
