"""The research models of the OpenAI-compatible API: ``research`` and ``research/<collection-slug>``.

Registered in ``ResearchConfig.ready()`` as a virtual-model provider (taskmaster.api.providers).

- ``research`` searches every collection of the acting team (the ``X-Team`` header's team, else
  the caller's first team) that the caller may read. Collections have no "default" flag: a
  team's knowledge base is all of its collections, exactly what the research page offers.
- ``research/<slug>`` searches that one collection of the acting team; another team's slug,
  or an unknown one, is a 404 (``VirtualModelNotFound``), never a hint that it exists.

An answer goes through the same pipeline as the research page (hybrid retrieval, the grounded
prompt with passages fenced as untrusted data, the relevance threshold, the QA gate), but is
not saved as a thread and not served from the answer cache: an API client keeps its own
history, and a cached answer may be longer than the client's ``max_tokens``. The response
carries Perplexity-style ``citations`` (one link per numbered passage, so ``[n]`` in the text
is ``citations[n-1]``) and ``search_results`` (``[{title, url, snippet}]``). Links point at
the document page in the app, anchored at the passage, made absolute with ``SITE_URL``.
The answer text ends with a numbered "Sources:" list of the same links, for clients that
print only the text (the Task Master CLI's ``research`` command).
"""

from __future__ import annotations

from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from research import answer as A
from research.models import Collection
from research.pipeline import ANSWER_K
from research.selectors import Hit, collections_for, hybrid_search
from taskmaster.access import AnyUser, Perm
from taskmaster.api.providers import VirtualAnswer, VirtualChatRequest, VirtualModelNotFound
from taskmaster.llm import agenerate
from taskmaster.models import Team

MODEL = "research"
PREFIX = MODEL + "/"
SNIPPET_CHARS = 300


def _team_collections(user: AbstractBaseUser, team: Team | None) -> list[Collection]:
    if team is None:
        return []
    # The API authenticates real users only; AbstractBaseUser is the provider protocol's wide type.
    return list(collections_for(cast(AnyUser, user), Perm.VIEW, team).order_by("slug"))


def collections_of_model(*, model: str, user: AbstractBaseUser, team: Team | None) -> list[Collection]:
    """The collections ``model`` searches for this caller; VirtualModelNotFound when it names none of theirs."""
    if team is None:
        raise VirtualModelNotFound(model)
    collections = _team_collections(user, team)
    if model == MODEL:
        return collections
    slug = model[len(PREFIX) :]
    chosen = [c for c in collections if c.slug == slug]
    if not chosen:
        raise VirtualModelNotFound(model)
    return chosen


def passage_url(hit: Hit) -> str:
    path = reverse("research:document", args=[hit.document_id]) + f"#passage-{hit.position}"
    return str(settings.SITE_URL or "").rstrip("/") + path


def sources_footer(hits: list[Hit], urls: list[str]) -> str:
    """The numbered sources under the answer text.

    Clients that print only the message text (the Task Master CLI's ``research`` command
    drops the ``citations`` field) still show where each ``[n]`` comes from.
    """
    lines = [f"[{n}] {h.document_title} - {url}" for n, (h, url) in enumerate(zip(hits, urls, strict=True), 1)]
    return "\n\nSources:\n" + "\n".join(lines)


def references(hits: list[Hit]) -> dict[str, Any]:
    """Perplexity-style extra fields: ``citations[n-1]`` is passage ``[n]``."""
    urls = [passage_url(h) for h in hits]
    return {
        "citations": urls,
        "search_results": [
            {
                "title": h.document_title + (f", page {h.page}" if h.page else ""),
                "url": url,
                "snippet": " ".join(h.text.split())[:SNIPPET_CHARS],
            }
            for h, url in zip(hits, urls, strict=True)
        ],
    }


def question_of(messages: list[dict[str, Any]]) -> str:
    """The standalone retrieval query: the last user message, a follow-up prefixed with the one before.

    Client system prompts are not forwarded: the grounded prompt is ours, and the passages
    need the small model's whole context.
    """
    asked = [str(m.get("content") or "").strip() for m in messages if m.get("role") == "user"]
    asked = [q for q in asked if q]
    if not asked:
        return ""
    return A.standalone_from(asked[-1], asked[-2] if len(asked) > 1 else None)


class ResearchModels:
    """Virtual models answered by the research pipeline (see the module docstring)."""

    def handles(self, model: str) -> bool:
        return model == MODEL or (model.startswith(PREFIX) and len(model) > len(PREFIX))

    def list_models(self, *, user: AbstractBaseUser, team: Team | None) -> list[str]:
        if team is None:
            return []
        return [MODEL, *(PREFIX + c.slug for c in _team_collections(user, team))]

    async def chat(self, request: VirtualChatRequest) -> VirtualAnswer:
        collections = await sync_to_async(collections_of_model)(
            model=request.model, user=request.user, team=request.team
        )
        query = question_of(request.messages)
        hits: list[Hit] = []
        if query and collections:
            found = await sync_to_async(hybrid_search)(
                user=cast(AnyUser, request.user),
                query=query,
                collection_ids=[c.pk for c in collections],
                k=ANSWER_K,
                context=request.context,
            )
            hits = [h for h in found if h.relevant]
        if not hits:
            # Grounded mode: the model is not called when nothing passes the relevance threshold.
            if request.on_text is not None:
                await request.on_text(A.REFUSAL)
            return VirtualAnswer(text=A.REFUSAL, extra={"citations": [], "search_results": []})

        on_text = request.on_text

        async def on_event(event: dict[str, Any]) -> None:
            if on_text is not None and event.get("type") == "llm.tokens":
                await on_text(event.get("text", ""))

        completion = await agenerate(
            A.build_messages(query, hits),
            role=A.ANSWER_ROLE,
            max_tokens=request.max_tokens or A.max_tokens_answer(),
            on_event=on_event,
            context=request.context,
            **request.sampling,
        )
        extra = references(hits)
        problems = A.qa_problems(completion.text, len(hits))
        if problems:
            # Shown, flagged: the text has streamed already (see answer.qa_problems).
            extra["qa_problems"] = problems
        footer = sources_footer(hits, extra["citations"])
        if on_text is not None:
            await on_text(footer)
        return VirtualAnswer(
            text=completion.text + footer,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            extra=extra,
        )
