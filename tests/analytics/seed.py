"""Seeding helpers: the ledger is data, so analytics tests write LLMCall rows directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from taskmaster.models import LLMCall, LLMModel


def make_call(*, at: datetime | None = None, **fields: Any) -> LLMCall:
    defaults: dict[str, Any] = {
        "feature": "research.answer",
        "model_name": "model-a",
        "kind": "chat",
        "role": "main",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "outcome": "ok",
    }
    call = LLMCall.objects.create(**{**defaults, **fields})
    if at is not None:
        LLMCall.objects.filter(pk=call.pk).update(created_at=at)
        call.created_at = at
    return call


def bulk_calls(rows: list[dict[str, Any]]) -> list[LLMCall]:
    defaults: dict[str, Any] = {"kind": "chat", "role": "main", "outcome": "ok"}
    return LLMCall.objects.bulk_create([LLMCall(**{**defaults, **r}) for r in rows], batch_size=1000)


def chat_model(name: str, *, roles: list[str] | None = None, available: bool = True) -> LLMModel:
    return LLMModel.objects.create(
        name=name, kind="chat", file_path=f"{name}.gguf", roles=roles or ["main"], enabled=True, available=available
    )


@pytest.fixture
def two_models(db: None) -> tuple[LLMModel, LLMModel]:
    from analytics import router

    router.clear_cache()
    yield chat_model("model-a"), chat_model("model-b")  # type: ignore[misc]
    router.clear_cache()
