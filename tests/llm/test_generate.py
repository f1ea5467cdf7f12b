"""generate()/embed() through real Celery inference workers and llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, Field

from taskmaster.llm import CallContext, OutputTruncated, embed, generate
from taskmaster.llm.schema import UnboundedSchema
from taskmaster.models import LLMCall
from tests.conftest import Workers


class Item(BaseModel):
    title: str = Field(max_length=40)
    priority: int = Field(ge=1, le=5)


class TaskList(BaseModel):
    tasks: list[Item] = Field(min_length=1, max_length=3)


def test_generate_returns_text_usage_timings_and_a_ledger_row(llm: Workers) -> None:
    completion = generate(
        [{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        context=CallContext(feature="test.generate"),
    )
    assert completion.text.strip()
    assert completion.finish_reason in {"stop", "length"}
    assert 0 < completion.usage.completion_tokens <= 16
    assert completion.usage.prompt_tokens > 0
    assert completion.timings.ttft_ms is not None and completion.timings.total_ms >= completion.timings.ttft_ms
    row = LLMCall.objects.get(pk=completion.request_id)
    assert row.feature == "test.generate"
    assert row.outcome == "ok"
    assert row.completion_tokens == completion.usage.completion_tokens
    assert row.model_name == "smollm2-135m-instruct"
    assert row.queue_wait_ms is not None and row.ttft_ms is not None and row.total_ms is not None


def test_schema_constrained_output_validates(llm: Workers) -> None:
    completion = generate(
        [{"role": "user", "content": "List two tasks for building a blog."}],
        schema=TaskList,
        max_tokens=160,
        context=CallContext(feature="test.schema"),
    )
    assert isinstance(completion.parsed, TaskList)
    assert 1 <= len(completion.parsed.tasks) <= 3
    assert LLMCall.objects.get(pk=completion.request_id).schema_name == "TaskList"


def test_truncated_schema_output_raises_a_typed_error(llm: Workers) -> None:
    with pytest.raises(OutputTruncated) as err:
        generate([{"role": "user", "content": "List tasks."}], schema=TaskList, max_tokens=3)
    assert "max_tokens" in str(err.value)
    row = LLMCall.objects.filter(error_class="truncated").latest("created_at")
    assert row.outcome == "error"


def test_unbounded_schema_is_refused_before_any_call(llm: Workers) -> None:
    class Loose(BaseModel):
        items: list[int]

    before = LLMCall.objects.count()
    with pytest.raises(UnboundedSchema, match="items"):
        generate([{"role": "user", "content": "x"}], schema=Loose, max_tokens=8)
    assert LLMCall.objects.count() == before


def test_embeddings_have_384_dimensions_and_rank_a_fixed_set(llm: Workers) -> None:
    query = "How do I reset my password?"
    docs = [
        "Click 'forgot password' on the sign-in page to receive a reset link by e-mail.",
        "The cafeteria serves lunch between noon and two o'clock.",
        "Our quarterly revenue grew by twelve percent.",
    ]
    vectors = np.asarray(embed([query, *docs], context=CallContext(feature="test.embed")))
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    scores = vectors[1:] @ vectors[0]
    assert int(np.argmax(scores)) == 0
    assert LLMCall.objects.filter(feature="test.embed", kind="embedding", outcome="ok").exists()


def test_small_integer_ranges_become_enums_the_grammar_enforces() -> None:
    from taskmaster.llm.schema import json_schema

    class Scored(BaseModel):
        score: int = Field(ge=1, le=10)
        tokens: int = Field(ge=0, le=100_000)

    properties = json_schema(Scored)["properties"]
    assert properties["score"]["enum"] == list(range(1, 11))
    assert "enum" not in properties["tokens"]  # too wide to list; pydantic still validates it


def test_ten_task_lists_in_a_row_all_validate(llm: Workers) -> None:
    topics = ["a blog", "a CLI", "a game", "an API", "a shop", "a wiki", "a bot", "a map", "a quiz", "a timer"]
    for topic in topics:
        completion = generate(
            [{"role": "user", "content": f"List tasks for building {topic}."}], schema=TaskList, max_tokens=200
        )
        assert isinstance(completion.parsed, TaskList)
        assert all(1 <= item.priority <= 5 for item in completion.parsed.tasks)
