"""The official `openai` package against live daphne, real workers and the small default models."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import httpx
import numpy as np
import openai
import pytest

from taskmaster.api import limits
from taskmaster.api.models import UserApiLimit
from taskmaster.llm.defaults import CHAT_NAME, EMBED_NAME
from taskmaster.models import LLMCall
from tests.conftest import Trio, Workers

pytestmark = pytest.mark.django_db(transaction=True)

Client = Callable[..., openai.OpenAI]
HELLO = [{"role": "user", "content": "Say hello."}]


def test_models_lists_the_registry_chat_and_embedding_models(
    llm: Workers, tokens: dict[str, str], client_for: Client
) -> None:
    ids = [m.id for m in client_for(tokens["member"]).models.list().data]
    assert CHAT_NAME in ids and EMBED_NAME in ids
    assert client_for(tokens["member"]).models.retrieve(CHAT_NAME).owned_by == "taskmaster-local"


def test_plain_completion_lands_in_the_ledger_as_api(
    llm: Workers, trio: Trio, tokens: dict[str, str], client_for: Client
) -> None:
    reply = client_for(tokens["owner"]).chat.completions.create(
        model=CHAT_NAME,
        messages=HELLO,
        max_tokens=8,
        temperature=0,
        seed=7,  # type: ignore[arg-type]
    )
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == CHAT_NAME
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
    row = LLMCall.objects.get(feature="api", user=trio.owner)
    assert row.team == trio.team and row.outcome == "ok"
    assert row.completion_tokens == reply.usage.completion_tokens
    assert row.metadata["endpoint"] == "chat.completions"
    # Charged to the daily quota.
    assert limits.tokens_used_today(trio.owner.pk) >= reply.usage.total_tokens


def test_streamed_completion_with_usage_ends_with_done(
    llm: Workers, tokens: dict[str, str], client_for: Client, live_url: str
) -> None:
    chunks = list(
        client_for(tokens["owner"]).chat.completions.create(
            model=CHAT_NAME,
            messages=HELLO,  # type: ignore[arg-type]
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in {"stop", "length"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    # The raw wire: SSE frames only, ending with [DONE].
    with httpx.stream(
        "POST",
        f"{live_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {tokens['owner']}"},
        json={"model": CHAT_NAME, "messages": HELLO, "max_tokens": 4, "stream": True},
        timeout=120,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in response.read().decode().split("\n\n") if f and not f.startswith(":")]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"
    assert json.loads(frames[0][6:])["choices"][0]["delta"]["role"] == "assistant"


def test_json_schema_response_format_is_constrained(llm: Workers, tokens: dict[str, str], client_for: Client) -> None:
    # Deliberately a client schema the runtime would call unbounded-safe only via max_tokens.
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "colour": {"enum": ["red", "green"]}},
        "required": ["ok", "colour"],
    }
    reply = client_for(tokens["owner"]).chat.completions.create(
        model=CHAT_NAME,
        messages=[{"role": "user", "content": "Is grass green? Answer in JSON."}],
        max_tokens=32,
        response_format={"type": "json_schema", "json_schema": {"name": "check", "schema": schema}},
    )
    assert reply.choices[0].finish_reason == "stop"
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data["ok"], bool) and data["colour"] in {"red", "green"}
    loose = client_for(tokens["owner"]).chat.completions.create(
        model=CHAT_NAME,
        messages=[{"role": "user", "content": "Reply in JSON."}],
        max_tokens=8,
        response_format={"type": "json_object"},
    )
    assert (loose.choices[0].message.content or "").lstrip().startswith("{")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Oslo"]}, "celsius": {"type": "boolean"}},
            "required": ["city", "celsius"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]},
    },
}


def test_named_and_required_tool_choice_return_valid_tool_calls(
    llm: Workers, tokens: dict[str, str], client_for: Client
) -> None:
    client = client_for(tokens["owner"])
    named = client.chat.completions.create(
        model=CHAT_NAME,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        max_tokens=32,
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = named.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert args["city"] in {"Paris", "Oslo"} and isinstance(args["celsius"], bool)

    required = client.chat.completions.create(
        model=CHAT_NAME,
        messages=[{"role": "user", "content": "What time is it in UTC?"}],
        max_tokens=32,
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice="required",
    )
    call = required.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert required.choices[0].finish_reason == "tool_calls"
    assert call.function.name in {"get_weather", "get_time"}  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(args) == ({"city", "celsius"} if call.function.name == "get_weather" else {"zone"})  # type: ignore[union-attr]

    streamed = list(
        client.chat.completions.create(
            model=CHAT_NAME,
            messages=[{"role": "user", "content": "Time in CET?"}],
            max_tokens=32,
            tools=[TIME],  # type: ignore[list-item]
            tool_choice="required",
            stream=True,
        )
    )
    deltas = [c.choices[0].delta.tool_calls for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert deltas and deltas[0][0].function.name == "get_time"  # type: ignore[union-attr]
    assert json.loads(deltas[0][0].function.arguments)["zone"] in {"UTC", "CET"}  # type: ignore[union-attr,arg-type]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings_float_and_base64(
    llm: Workers, trio: Trio, tokens: dict[str, str], client_for: Client, live_url: str
) -> None:
    result = client_for(tokens["member"]).embeddings.create(
        model=EMBED_NAME, input=["reset my password", "lunch menu"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1]
    vectors = np.asarray([d.embedding for d in result.data])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens
    raw = httpx.post(
        f"{live_url}/v1/embeddings",
        headers={"Authorization": f"Bearer {tokens['member']}"},
        json={"model": EMBED_NAME, "input": "reset my password", "encoding_format": "base64"},
        timeout=60,
    ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    # Batched and single embeddings differ in the last digits (llama.cpp batching).
    assert decoded.shape == (384,) and np.allclose(decoded, vectors[0], atol=1e-3)
    # The SDK's default (base64, decoded client-side) gives exactly the same vector.
    default = client_for(tokens["member"]).embeddings.create(model=EMBED_NAME, input="reset my password")
    assert np.allclose(default.data[0].embedding, decoded, atol=1e-6)
    assert LLMCall.objects.filter(feature="api", kind="embedding", user=trio.member).count() == 3


# --- errors ---------------------------------------------------------------------------------


def _error(exc: openai.APIStatusError) -> dict[str, object]:
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_missing_invalid_and_revoked_tokens_get_401(
    live_url: str, trio: Trio, tokens: dict[str, str], client_for: Client
) -> None:
    from taskmaster.api.selectors import api_token_by_secret
    from taskmaster.api.services import api_token_revoke

    missing = httpx.get(f"{live_url}/v1/models", timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as err:
        client_for("tml_not-a-real-token").models.list()
    assert _error(err.value)["code"] == "invalid_api_key"
    token = api_token_by_secret(tokens["member"])
    assert token is not None
    api_token_revoke(token=token)
    with pytest.raises(openai.AuthenticationError):
        client_for(tokens["member"]).models.list()


def test_unknown_model_is_404(llm: Workers, tokens: dict[str, str], client_for: Client) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client_for(tokens["owner"]).chat.completions.create(model="gpt-9", messages=HELLO, max_tokens=8)  # type: ignore[arg-type]
    error = _error(err.value)
    assert error["code"] == "model_not_found" and error["param"] == "model" and "gpt-9" in str(error["message"])
    with pytest.raises(openai.NotFoundError):
        client_for(tokens["owner"]).embeddings.create(model="nope", input="x")


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (json.dumps({"model": CHAT_NAME}).encode(), "Missing required parameter: 'messages'"),
    (json.dumps({"model": CHAT_NAME, "messages": []}).encode(), "'messages'"),
    (json.dumps({"model": CHAT_NAME, "messages": HELLO, "temperature": "hot"}).encode(), "'temperature'"),
    (
        json.dumps({"model": CHAT_NAME, "messages": [{"role": "robot", "content": "x"}]}).encode(),
        "messages[0].role",
    ),
    (
        json.dumps(
            {
                "model": CHAT_NAME,
                "messages": HELLO,
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            }
        ).encode(),
        "not in 'tools'",
    ),
]


def test_bad_bodies_get_400_with_the_reason(llm: Workers, tokens: dict[str, str], live_url: str) -> None:
    for body, expect in BAD_BODIES:
        response = httpx.post(
            f"{live_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {tokens['owner']}", "Content-Type": "application/json"},
            content=body,
            timeout=30,
        )
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert expect in error["message"], (body, error)


def test_oversized_body_and_oversized_max_tokens_get_400(
    llm: Workers, tokens: dict[str, str], client_for: Client
) -> None:
    client = client_for(tokens["owner"])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=CHAT_NAME, messages=[{"role": "user", "content": "x" * (1024 * 1024 + 10)}], max_tokens=8
        )
    assert _error(err.value)["code"] == "request_too_large"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT_NAME, messages=HELLO, max_tokens=100_000)  # type: ignore[arg-type]
    error = _error(err.value)
    assert error["param"] == "max_tokens" and error["code"] == "context_length_exceeded"
    assert "4096" in str(error["message"])
    assert not LLMCall.objects.filter(feature="api").exists()


def test_rate_limit_and_daily_quota_answer_429_with_retry_after(
    llm: Workers, trio: Trio, tokens: dict[str, str], client_for: Client
) -> None:
    UserApiLimit.objects.create(user=trio.member, requests_per_minute=1)
    client = client_for(tokens["member"])
    caught: list[openai.RateLimitError] = []
    # Three calls straddle at most one minute boundary, so at least one is over a limit of 1/min.
    for _ in range(3):
        try:
            client.models.list()
        except openai.RateLimitError as exc:
            caught.append(exc)
    assert caught
    assert 1 <= int(caught[0].response.headers["retry-after"]) <= 60
    assert _error(caught[0])["code"] == "rate_limit_exceeded"

    UserApiLimit.objects.create(user=trio.owner, daily_token_quota=50)
    limits.add_tokens(trio.owner.pk, 50)
    with pytest.raises(openai.RateLimitError) as err:
        client_for(tokens["owner"]).chat.completions.create(model=CHAT_NAME, messages=HELLO, max_tokens=8)  # type: ignore[arg-type]
    assert _error(err.value)["code"] == "insufficient_quota"
    assert int(err.value.response.headers["retry-after"]) > 0
    assert not LLMCall.objects.filter(feature="api", user=trio.owner).exists()


def test_x_team_selects_a_team_the_user_belongs_to(
    llm: Workers, trio: Trio, tokens: dict[str, str], client_for: Client
) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client_for(tokens["outsider"], **{"X-Team": "alpha"}).models.list()
    assert _error(err.value)["code"] == "team_not_found"
    client_for(tokens["outsider"], **{"X-Team": "beta"}).embeddings.create(model=EMBED_NAME, input="hi")
    row = LLMCall.objects.get(feature="api", user=trio.outsider)
    assert row.team == trio.other_team


def test_client_disconnect_cancels_the_generation(
    llm: Workers, trio: Trio, tokens: dict[str, str], live_url: str
) -> None:
    # max_tokens is large only so the generation is surely still running when the client leaves.
    body = {
        "model": CHAT_NAME,
        "messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}],
        "max_tokens": 256,
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{live_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {tokens['owner']}"},
        json=body,
        timeout=120,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"role"' not in line:
                break  # first content delta: hang up
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        row = LLMCall.objects.filter(feature="api", user=trio.owner).first()
        if row is not None:
            break
        time.sleep(0.3)
    assert row is not None, "the cancelled call never reached the ledger"
    assert row.outcome == "cancelled" and row.completion_tokens < 256
