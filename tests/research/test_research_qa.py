"""The research.answer QA gate: a failed answer is still shown, flagged (also when served from the cache)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from research import answer as A
from research import services
from research.models import AnswerCache, Message
from taskmaster import qa
from tests.conftest import Trio, Workers
from tests.research.test_research_chat import CORPUS, FINAL, _connect, _frames_until, _setup

FLAG = "Check this answer"


def test_the_registered_gate_flags_citations_of_passages_that_were_not_given() -> None:
    # The gate itself comes from the recovery app (registered in its ready()).
    assert A.qa_problems("Backups run at 02:00 [1], see [1, 2].", 2) == []
    assert A.qa_problems("No citation at all.", 0) == []
    problems = A.qa_problems("Backups run nightly [1] and restores take an hour [3].", 2)
    assert problems == ["cites [3] but the answer was given passages 1..2"]


def test_a_flagged_answer_shows_the_problem_and_links_only_real_passages(trio: Trio) -> None:
    thread = services.thread_create(team=trio.team, owner=trio.owner, collections=[])
    text = "Backups run nightly [1] and restores take an hour [3]."
    message = A.message_add_answer(
        thread=thread, content=text, kind=Message.Kind.ANSWER, hits=[], qa_problems=A.qa_problems(text, 0)
    )
    assert message.qa_problems == ["cites [1, 3] but the answer was given no passages"]
    client = Client()
    client.force_login(trio.owner)
    page = client.get(f"/research/threads/{thread.pk}/").content.decode()
    assert FLAG in page and "cites [1, 3] but the answer was given no passages" in page
    assert "restores take an hour" in page
    assert f"/research/messages/{message.pk}/sources/" not in page


@pytest.fixture
def small_answers(settings: Any) -> None:
    settings.RESEARCH_ANSWER_MAX_TOKENS = 48


@pytest.fixture
def strict_gate() -> Iterator[list[object]]:
    """A second research.answer gate that rejects everything, registered like the recovery app's."""
    seen: list[object] = []

    def reject(output: object) -> list[str]:
        seen.append(output)
        return ["test gate rejects every answer"]

    qa.register_gate("research.answer", reject)
    yield seen
    qa._gates["research.answer"].remove(reject)


@pytest.mark.django_db(transaction=True)
async def test_a_streamed_answer_that_fails_qa_is_shown_and_flagged_also_from_cache(
    trio: Trio,
    llm: Workers,
    small_answers: None,
    strict_gate: list[object],
) -> None:
    thread, kb = await sync_to_async(_setup)(trio, CORPUS)
    comm, connected = await _connect(trio.owner, thread.pk)
    assert connected
    await comm.send_to(
        text_data=json.dumps({"question": "When do the Zephyr database backups run?", "collections": [kb]})
    )
    frames = await _frames_until(comm, FINAL)
    message = await Message.objects.filter(thread=thread, role="assistant").alatest("pk")
    assert message.kind == "answer" and message.content
    # The gate got the documented shape: the saved text and the number of passages given.
    passages = await message.citations.acount()
    assert strict_gate == [{"text": message.content, "passage_count": passages}]
    assert "test gate rejects every answer" in message.qa_problems
    assert FLAG in frames[-1] and "Sources (" in frames[-1]
    await _frames_until(comm, f'id="followups-{message.pk}" hx-swap-oob')
    # Cached like any answer, and checked again when served from the cache: still flagged.
    assert await AnswerCache.objects.aexists()
    await comm.send_to(
        text_data=json.dumps({"question": "When do the Zephyr database backups run?", "collections": [kb]})
    )
    frames = await _frames_until(comm, FINAL)
    cached = await Message.objects.filter(thread=thread, role="assistant").alatest("pk")
    assert cached.kind == "cached" and cached.content == message.content
    assert "test gate rejects every answer" in cached.qa_problems
    assert "cached answer" in frames[-1] and FLAG in frames[-1]
    await comm.disconnect()
