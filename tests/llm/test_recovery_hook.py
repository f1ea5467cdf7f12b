"""The core's recovery hook: a registered handler can change a failed call's arguments and retry it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from taskmaster.llm import CallContext, OutputTruncated, RecoveryAttempt, generate, set_recovery
from taskmaster.models import LLMCall
from tests.conftest import Workers


class Pair(BaseModel):
    words: list[Annotated[str, Field(max_length=20)]] = Field(min_length=1, max_length=2)


@pytest.fixture
def attempts() -> Iterator[list[RecoveryAttempt]]:
    seen: list[RecoveryAttempt] = []
    yield seen
    set_recovery(None)


def test_handler_raises_the_token_budget_and_the_call_succeeds(llm: Workers, attempts: list[RecoveryAttempt]) -> None:
    async def handler(attempt: RecoveryAttempt) -> dict[str, Any] | None:
        attempts.append(attempt)
        if isinstance(attempt.error, OutputTruncated) and attempt.attempt == 1:
            return {"max_tokens": 96}
        return None

    set_recovery(handler)
    completion = generate(
        [{"role": "user", "content": "Give two words."}],
        schema=Pair,
        max_tokens=2,
        context=CallContext(feature="test.recover"),
    )
    assert isinstance(completion.parsed, Pair)
    assert len(attempts) == 1 and attempts[0].attempt == 1 and not attempts[0].streamed
    failed = LLMCall.objects.get(pk=attempts[0].error.request_id)
    assert failed.error_class == "truncated" and failed.feature == "test.recover"
    assert LLMCall.objects.get(pk=completion.request_id).outcome == "ok"


def test_handler_that_gives_up_lets_the_original_error_through(llm: Workers, attempts: list[RecoveryAttempt]) -> None:
    async def handler(attempt: RecoveryAttempt) -> dict[str, Any] | None:
        attempts.append(attempt)
        return None

    set_recovery(handler)
    with pytest.raises(OutputTruncated):
        generate([{"role": "user", "content": "Give two words."}], schema=Pair, max_tokens=2)
    assert len(attempts) == 1


def test_recover_false_shows_the_handler_the_failure_but_ignores_its_answer(
    llm: Workers, attempts: list[RecoveryAttempt]
) -> None:
    async def handler(attempt: RecoveryAttempt) -> dict[str, Any] | None:
        attempts.append(attempt)
        return {"max_tokens": 96}  # would fix it, but the caller owns its retries

    set_recovery(handler)
    with pytest.raises(OutputTruncated):
        generate(
            [{"role": "user", "content": "Give two words."}],
            schema=Pair,
            max_tokens=2,
            recover=False,
            context=CallContext(feature="test.recover"),
        )
    assert len(attempts) == 1 and attempts[0].recover is False
    assert LLMCall.objects.filter(feature="test.recover").count() == 1
