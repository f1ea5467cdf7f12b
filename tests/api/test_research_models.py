"""The research models (``research``, ``research/<slug>``) through the official `openai` package,
against live daphne, the real ingestion job, hybrid retrieval and llama.cpp."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from django.conf import settings
from django.test import Client

from research import services
from research.answer import REFUSAL, qa_problems
from research.models import Document
from taskmaster.models import LLMCall
from tests.conftest import Trio, Workers
from tests.research.helpers import add_texts

pytestmark = pytest.mark.django_db(transaction=True)

OpenAIClient = Callable[..., openai.OpenAI]
CORPUS = {
    "Backups": "Zephyr database backups run nightly at 02:00 UTC and are kept for thirty days.",
    "Cafeteria": "The cafeteria serves soup and sandwiches between noon and two o'clock.",
}
QUESTION = [{"role": "user", "content": "When do the Zephyr database backups run?"}]


@pytest.fixture
def handbook(trio: Trio, llm: Workers) -> Document:
    """A team collection "handbook" with two indexed documents; returns the Backups document."""
    kb = services.collection_create(team=trio.team, name="Handbook", slug="handbook")
    add_texts(kb, CORPUS)
    return Document.objects.get(collection=kb, title="Backups")


def _backups_link(doc: Document) -> str:
    return f"{settings.SITE_URL}/research/documents/{doc.pk}/#passage-0"


def test_research_models_are_listed_and_answer_with_citations(
    trio: Trio, handbook: Document, tokens: dict[str, str], client_for: OpenAIClient
) -> None:
    member = client_for(tokens["member"])
    ids = [m.id for m in member.models.list().data]
    assert "research" in ids and "research/handbook" in ids
    reply = member.chat.completions.create(model="research/handbook", messages=QUESTION, max_tokens=24)  # type: ignore[arg-type]
    assert reply.model == "research/handbook"
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in {"stop", "length"}
    extra = reply.model_extra or {}
    citations, results = extra["citations"], extra["search_results"]
    # citations[n-1] is passage [n]: the backups document ranks first.
    assert citations[0] == _backups_link(handbook)
    assert len(results) == len(citations) and results[0]["url"] == citations[0]
    assert results[0]["title"] == "Backups" and "02:00 UTC" in results[0]["snippet"]
    # The QA gate ran on the text: flagged exactly when a citation names no given passage.
    answer, _, sources = reply.choices[0].message.content.partition("\n\nSources:\n")
    assert extra.get("qa_problems", []) == qa_problems(answer, len(citations))
    # The text ends with the numbered sources, for clients that print only the text.
    assert sources.splitlines()[0] == f"[1] Backups - {citations[0]}"
    # Every model call (the query embedding and the answer) is an API call of the member's team.
    calls = LLMCall.objects.filter(feature="api", user=trio.member, metadata__virtual_model="research/handbook")
    assert set(calls.values_list("kind", flat=True)) == {"embedding", "chat"}
    assert all(c.team_id == trio.team.pk for c in calls)
    assert reply.usage is not None and reply.usage.completion_tokens == calls.get(kind="chat").completion_tokens

    # The citation link opens the passage for a teammate, and is a 404 for an outsider.
    page = Client()
    page.force_login(trio.member)
    shown = page.get(citations[0].split("#")[0])
    assert shown.status_code == 200
    assert b'id="passage-0"' in shown.content and b"02:00 UTC" in shown.content
    outsider = Client()
    outsider.force_login(trio.outsider)
    assert outsider.get(citations[0].split("#")[0]).status_code == 404


def test_research_model_streams_citations_on_the_final_chunk(
    handbook: Document, tokens: dict[str, str], client_for: OpenAIClient
) -> None:
    chunks = list(
        client_for(tokens["owner"]).chat.completions.create(
            model="research",  # the team's collections: here just the handbook
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    extra = finals[0].model_extra or {}
    assert extra["citations"][0] == _backups_link(handbook)
    assert extra["search_results"][0]["title"] == "Backups"
    # Text deltas carry no citations; the usage chunk carries them again.
    assert all("citations" not in (c.model_extra or {}) for c in chunks if c.choices and not c.choices[0].finish_reason)
    assert chunks[-1].choices == [] and (chunks[-1].model_extra or {})["citations"] == extra["citations"]


def test_other_teams_collections_are_404_and_an_empty_team_is_refused(
    handbook: Document, tokens: dict[str, str], client_for: OpenAIClient
) -> None:
    outsider = client_for(tokens["outsider"])
    ids = [m.id for m in outsider.models.list().data]
    assert "research" in ids and not [i for i in ids if i.startswith("research/")]
    with pytest.raises(openai.NotFoundError) as err:
        outsider.chat.completions.create(model="research/handbook", messages=QUESTION, max_tokens=8)  # type: ignore[arg-type]
    assert err.value.code == "model_not_found"
    # Streaming too: a plain 404 before any event, not an error frame inside a 200 stream.
    with pytest.raises(openai.NotFoundError):
        outsider.chat.completions.create(model="research/handbook", messages=QUESTION, max_tokens=8, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client_for(tokens["member"]).chat.completions.create(
            model="research/no-such-collection",
            messages=QUESTION,  # type: ignore[arg-type]
            max_tokens=8,
        )
    # The outsider's team has no collections: a grounded refusal, and the model is not called.
    before = LLMCall.objects.filter(kind="chat").count()
    reply = outsider.chat.completions.create(model="research", messages=QUESTION, max_tokens=8)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == REFUSAL
    assert (reply.model_extra or {})["citations"] == [] and (reply.model_extra or {})["search_results"] == []
    assert LLMCall.objects.filter(kind="chat").count() == before
