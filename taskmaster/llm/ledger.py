"""Writes the LLM call ledger. One row per call; the request id is the row id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from taskmaster.llm.errors import LLMError
from taskmaster.llm.models import LLMCall, Outcome
from taskmaster.llm.types import CallContext

# Other apps (recovery, analytics) react to calls without the core importing them.
_hooks: list[Callable[[LLMCall], None]] = []


def register_hook(hook: Callable[[LLMCall], None]) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


@dataclass
class CallRecord:
    request_id: str
    context: CallContext
    kind: str
    model_name: str
    model_id: int | None = None
    role: str = ""
    schema_name: str = ""
    input_chars: int = 0
    queue_wait_ms: float | None = None
    worker: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    total_ms: float | None = None
    tokens_per_s: float | None = None
    finish_reason: str = ""
    cache_hit: bool = False
    routing: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> LLMCall | None:
        return self._write(Outcome.OK, "", "")

    def fail(self, exc: LLMError) -> LLMCall | None:
        outcome = Outcome.CANCELLED if exc.error_class == "cancelled" else Outcome.ERROR
        return self._write(outcome, exc.error_class, str(exc))

    def _write(self, outcome: str, error_class: str, message: str) -> LLMCall | None:
        ctx = self.context
        try:
            with transaction.atomic():
                call = LLMCall.objects.create(
                    id=self.request_id,
                    user_id=ctx.user_id,
                    team_id=ctx.team_id,
                    feature=ctx.feature,
                    kind=self.kind,
                    role=self.role,
                    model_id=self.model_id,
                    model_name=self.model_name,
                    prompt_tokens=self.prompt_tokens,
                    completion_tokens=self.completion_tokens,
                    input_chars=self.input_chars,
                    queue_wait_ms=self.queue_wait_ms,
                    ttft_ms=self.ttft_ms,
                    total_ms=self.total_ms,
                    tokens_per_s=self.tokens_per_s,
                    finish_reason=self.finish_reason,
                    schema_name=self.schema_name,
                    template_version=ctx.template_version,
                    outcome=outcome,
                    error_class=error_class,
                    error_message=message[:4000],
                    cache_hit=self.cache_hit,
                    worker=self.worker,
                    routing=self.routing,
                    metadata={**ctx.metadata, **self.metadata},
                )
        except IntegrityError:
            # Already recorded: by the worker, or by a waiter that gave up on it.
            return None
        for hook in _hooks:
            transaction.on_commit(lambda hook=hook: hook(call))  # type: ignore[misc]
        return call


def mark(request_id: str, **changes: Any) -> None:
    """Amend a recorded call (the caller learns of schema failures after the worker wrote it)."""
    LLMCall.objects.filter(pk=request_id).update(**changes)
