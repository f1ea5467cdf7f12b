"""The virtual-model hook (research models later): a tiny provider defined here, in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.test import AsyncClient

from taskmaster.api.providers import (
    VirtualAnswer,
    VirtualChatRequest,
    VirtualModelNotFound,
    register_virtual_models,
    unregister_virtual_models,
)
from taskmaster.api.services import api_token_create
from taskmaster.llm.types import Usage
from taskmaster.models import Team
from tests.conftest import Trio

pytestmark = pytest.mark.django_db(transaction=True)

CITATION = "https://kb.example/doc/1"


class EchoProvider:
    """Answers "echo" and "echo/<team slug>" by echoing the last user message, with citations."""

    def __init__(self) -> None:
        self.requests: list[VirtualChatRequest] = []

    def handles(self, model: str) -> bool:
        return model == "echo" or model.startswith("echo/")

    def list_models(self, *, user: AbstractBaseUser, team: Team | None) -> list[str]:
        return ["echo"] + ([f"echo/{team.slug}"] if team else [])

    async def chat(self, request: VirtualChatRequest) -> VirtualAnswer:
        self.requests.append(request)
        if request.model.startswith("echo/") and (request.team is None or request.model != f"echo/{request.team.slug}"):
            raise VirtualModelNotFound(request.model)
        words = str(request.messages[-1]["content"]).split()
        if request.on_text is not None:
            for word in words:
                await request.on_text(word + " ")
        return VirtualAnswer(
            text=" ".join(words) + " ",
            usage=Usage(prompt_tokens=3, completion_tokens=len(words)),
            extra={"citations": [CITATION], "search_results": [{"title": "Doc 1", "url": CITATION, "snippet": "s"}]},
        )


@pytest.fixture(autouse=True)
async def _close_thread_connections() -> AsyncIterator[None]:
    yield
    # The views' sync_to_async thread holds its own connection; close it or the test DB cannot be dropped.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def echo() -> Iterator[EchoProvider]:
    provider = EchoProvider()
    register_virtual_models(provider)
    yield provider
    unregister_virtual_models(provider)


def _auth(trio: Trio, who: str = "member") -> dict[str, str]:
    _, secret = api_token_create(user=getattr(trio, who), name="t")
    return {"Authorization": f"Bearer {secret}"}


async def _post(client: AsyncClient, headers: dict[str, str], body: dict[str, object]):  # type: ignore[no-untyped-def]
    return await client.post("/v1/chat/completions", json.dumps(body), content_type="application/json", headers=headers)


async def test_virtual_models_are_listed_and_answer_with_citations(trio: Trio, echo: EchoProvider) -> None:
    headers = await _sync(_auth, trio)
    client = AsyncClient()
    listed = await client.get("/v1/models", headers=headers)
    ids = [m["id"] for m in json.loads(listed.content)["data"]]
    assert "echo" in ids and "echo/alpha" in ids
    reply = await _post(client, headers, {"model": "echo/alpha", "messages": [{"role": "user", "content": "hi there"}]})
    assert reply.status_code == 200
    data = json.loads(reply.content)
    assert data["choices"][0]["message"]["content"] == "hi there "
    assert data["citations"] == [CITATION] and data["search_results"][0]["url"] == CITATION
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    request = echo.requests[-1]
    assert request.context.feature == "api" and request.context.team_id == trio.team.pk
    assert request.context.user_id == trio.member.pk


async def test_virtual_model_streams_text_and_extra_fields(trio: Trio, echo: EchoProvider) -> None:
    headers = await _sync(_auth, trio)
    response = await _post(
        AsyncClient(),
        headers,
        {
            "model": "echo",
            "messages": [{"role": "user", "content": "one two three"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    raw = b"".join([part async for part in response.streaming_content]).decode()
    frames = [f[6:] for f in raw.split("\n\n") if f.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "one two three "
    final = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert final["choices"][0]["finish_reason"] == "stop" and final["citations"] == [CITATION]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_virtual_model_of_another_team_is_404(trio: Trio, echo: EchoProvider) -> None:
    headers = await _sync(_auth, trio, "outsider")
    listed = json.loads((await AsyncClient().get("/v1/models", headers=headers)).content)
    assert "echo/alpha" not in [m["id"] for m in listed["data"]]
    reply = await _post(AsyncClient(), headers, {"model": "echo/alpha", "messages": [{"role": "user", "content": "x"}]})
    assert reply.status_code == 404
    assert json.loads(reply.content)["error"]["code"] == "model_not_found"
    tools = await _post(
        AsyncClient(),
        headers,
        {"model": "echo", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
    )
    assert tools.status_code == 400


async def _sync(fn, *args):  # type: ignore[no-untyped-def]
    return await sync_to_async(fn)(*args)
