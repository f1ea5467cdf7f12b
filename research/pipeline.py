"""The asynchronous side of a research turn: retrieve, stream, save, and the research tree.

``send`` pushes HTML frames of the one streaming protocol (taskmaster.llm.stream) to the page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.html import format_html

from research import answer as A
from research.models import Collection, Message, Thread
from research.selectors import Hit, hybrid_search
from taskmaster.llm import CallContext, Completion, LLMError, agenerate
from taskmaster.llm import stream as S

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
OnRequest = Callable[[str | None], None]

MODES: dict[str, tuple[int, int]] = {"quick": (1, 2500), "balanced": (2, 6000), "deep": (3, 12000)}
ANSWER_K = 4
SUB_K = 3
SUB_MAX_TOKENS = 96
PLAN_MAX_TOKENS = 100
FOLLOWUP_MAX_TOKENS = 64
SYNTHESIS_PASSAGES = 8


@dataclass
class Turn:
    thread: Thread
    user_id: int
    question: str
    mode: str
    collections: list[Collection]
    bubble: str
    send: Send
    on_request: OnRequest
    standalone: str = ""
    container: str = "chat"

    def ctx(self, feature: str) -> CallContext:
        return CallContext(
            feature=feature,
            user_id=self.user_id,
            team_id=self.thread.team_id,
            template_version=A.TEMPLATE_VERSION,
            conversation=f"research-{self.thread.pk}",
        )


async def _search(turn: Turn, query: str, k: int) -> list[Hit]:
    from django.contrib.auth import get_user_model

    user = await get_user_model().objects.aget(pk=turn.user_id)
    hits = await sync_to_async(hybrid_search)(
        user=user,
        query=query,
        collection_ids=[c.pk for c in turn.collections],
        k=k,
        context=turn.ctx("research.search"),
    )
    return [h for h in hits if h.relevant]


async def stream_completion(turn: Turn, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """agenerate with queue/token/meta frames into the turn's bubble (the shared protocol)."""
    bubble = turn.bubble

    async def on_event(event: dict[str, Any]) -> None:
        kind = event["type"]
        turn.on_request(event.get("request_id"))
        if kind == "llm.queued":
            await turn.send(S.meta(bubble, f"Queued: position {event['position']}"))
        elif kind == "llm.started":
            await turn.send(S.meta(bubble, "Generating…"))
        elif kind == "llm.tokens":
            await turn.send(S.tokens(bubble, event["text"]) + S.meta(bubble, f"{event['tps']} tokens/s"))

    try:
        return await agenerate(messages, on_event=on_event, **kwargs)
    finally:
        turn.on_request(None)


async def _finish(turn: Turn, message: Message, hits: list[Hit], meta: str, *, pending_followups: bool) -> None:
    citations = [c async for c in message.citations.all()]
    extra = await sync_to_async(render_to_string)(
        "research/_answer_extra.html",
        {"message": message, "citations": citations, "pending_followups": pending_followups},
    )
    text = A.link_citations(message.content, message.pk, len(hits))
    await turn.send(S.final(turn.bubble, text, meta, extra_html=extra))


async def _followups(turn: Turn, message: Message) -> list[str]:
    prompt = (
        f"Question: {turn.standalone}\nAnswer: {message.content[:600]}\n"
        "Suggest up to three short follow-up questions a reader might ask next."
    )
    questions: list[str] = []
    try:
        completion = await agenerate(
            [{"role": "user", "content": prompt}],
            role=A.ANSWER_ROLE,
            schema=A.FollowUps,
            max_tokens=FOLLOWUP_MAX_TOKENS,
            context=turn.ctx("research.followups"),
        )
        if isinstance(completion.parsed, A.FollowUps):
            questions = [q.strip() for q in completion.parsed.questions if q.strip()]
    except LLMError as exc:
        # Follow-ups are a nicety: the answer stands without them.
        log.info("no follow-up questions for message %s: %s", message.pk, exc)
    await sync_to_async(A.message_set_followups)(message_id=message.pk, followups=questions)
    html = await sync_to_async(render_to_string)(
        "research/_followups.html", {"message_id": message.pk, "followups": questions}
    )
    await turn.send(html)
    return questions


async def answer_turn(turn: Turn) -> Message:
    """A grounded answer: cache, else retrieve, refuse or stream; then save and finish."""
    model_name = await sync_to_async(A.answer_model_name)()
    key = A.cache_key(collections=turn.collections, question=turn.standalone, model_name=model_name)
    cached = await sync_to_async(A.cache_get)(key=key)
    if cached is not None:
        entry, hits = cached
        message = await sync_to_async(A.message_add_answer)(
            thread=turn.thread,
            content=entry.answer,
            kind=Message.Kind.CACHED,
            hits=hits,
            standalone=turn.standalone,
            call_id=entry.call_id,
            followups=entry.followups,
            # Checked again rather than stored: a flagged answer stays flagged when served from cache.
            qa_problems=A.qa_problems(entry.answer, len(hits)),
        )
        await _finish(turn, message, hits, f"cached answer · {model_name}", pending_followups=False)
        html = await sync_to_async(render_to_string)(
            "research/_followups.html", {"message_id": message.pk, "followups": entry.followups}
        )
        await turn.send(html)
        return message
    await turn.send(S.meta(turn.bubble, "Searching the collections…"))
    hits = await _search(turn, turn.standalone, ANSWER_K)
    if not hits:
        message = await sync_to_async(A.message_add_answer)(
            thread=turn.thread, content=A.REFUSAL, kind=Message.Kind.REFUSAL, hits=[], standalone=turn.standalone
        )
        await _finish(turn, message, [], "no relevant passages · the model was not called", pending_followups=False)
        return message
    try:
        completion = await stream_completion(
            turn,
            A.build_messages(turn.standalone, hits),
            role=A.ANSWER_ROLE,
            max_tokens=A.max_tokens_answer(),
            context=turn.ctx("research.answer"),
        )
    except LLMError as exc:
        message = await sync_to_async(A.message_add_answer)(
            thread=turn.thread,
            content=f"**Error:** {exc}",
            kind=Message.Kind.FAILED,
            hits=[],
            standalone=turn.standalone,
        )
        await turn.send(S.error(turn.bubble, str(exc)))
        return message
    text = completion.text.strip()
    problems = A.qa_problems(text, len(hits))
    message = await sync_to_async(A.message_add_answer)(
        thread=turn.thread,
        content=text,
        kind=Message.Kind.ANSWER,
        hits=hits,
        standalone=turn.standalone,
        call_id=completion.request_id,
        qa_problems=problems,
    )
    meta = f"{completion.model} · {completion.usage.completion_tokens} tokens · {len(hits)} passages"
    await _finish(turn, message, hits, meta, pending_followups=True)
    followups = await _followups(turn, message)
    if completion.finish_reason != "error":
        await sync_to_async(A.cache_put)(
            key=key,
            team_id=turn.thread.team_id,
            question=turn.standalone,
            model_name=model_name,
            answer=message.content,
            hits=hits,
            followups=followups,
            call_id=completion.request_id,
        )
    return message


# --- recursive research ----------------------------------------------------------------


@dataclass
class Node:
    path: str
    question: str
    depth: int
    status: str = "pending"
    answer: str = ""
    citations: list[int] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "status": self.status,
            "answer": self.answer,
            "citations": self.citations,
            "children": [c.as_dict() for c in self.children],
        }


@dataclass
class Run:
    turn: Turn
    depth: int
    budget: int
    used: int = 0
    hits: list[Hit] = field(default_factory=list)

    @property
    def tree_id(self) -> str:
        return f"tree-{self.turn.bubble}"

    def spend(self, completion: Completion) -> None:
        self.used += completion.usage.prompt_tokens + completion.usage.completion_tokens

    def left(self) -> int:
        return self.budget - self.used

    def number(self, hit: Hit) -> int:
        for i, known in enumerate(self.hits, start=1):
            if known.chunk_id == hit.chunk_id:
                return i
        self.hits.append(hit)
        return len(self.hits)

    async def budget_frame(self) -> None:
        await self.turn.send(
            format_html(
                '<span id="{}-budget" class="small muted" hx-swap-oob="outerHTML">Tokens used: {} of {} budget</span>',
                self.tree_id,
                self.used,
                self.budget,
            )
        )

    async def node_frame(self, node: Node, parent_list: str) -> None:
        html = await sync_to_async(render_to_string)(
            "research/_tree_node.html", {"node": node, "tree_id": self.tree_id, "target": parent_list}
        )
        await self.turn.send(html)

    async def update_frame(self, node: Node) -> None:
        html = await sync_to_async(render_to_string)(
            "research/_tree_node.html", {"node": node, "tree_id": self.tree_id, "update": True}
        )
        await self.turn.send(html)


async def _plan(run: Run, node: Node, limit: int) -> list[str]:
    if run.left() < PLAN_MAX_TOKENS * 4:
        return []
    prompt = f"Split this research question into at most {limit} simpler sub-questions.\nQuestion: {node.question}"
    try:
        completion = await agenerate(
            [{"role": "user", "content": prompt}],
            role=A.ANSWER_ROLE,
            schema=A.SubQuestions,
            max_tokens=PLAN_MAX_TOKENS,
            context=run.turn.ctx("research.plan"),
        )
    except LLMError as exc:
        log.info("no sub-questions for %r: %s", node.question, exc)
        return []
    run.spend(completion)
    assert isinstance(completion.parsed, A.SubQuestions)
    seen: set[str] = {A.normalise(node.question)}
    out: list[str] = []
    for q in completion.parsed.questions:
        if A.normalise(q) not in seen and q.strip():
            seen.add(A.normalise(q))
            out.append(q.strip())
    return out[:limit]


def _sub_max_tokens() -> int:
    return int(getattr(settings, "RESEARCH_SUB_MAX_TOKENS", SUB_MAX_TOKENS))


async def _answer_node(run: Run, node: Node) -> None:
    hits = await _search(run.turn, node.question, SUB_K)
    if not hits:
        node.status, node.answer = "no passages", "No relevant passages."
        return
    if run.left() < _sub_max_tokens() * 6:
        node.status, node.answer = "skipped", "Token budget spent."
        return
    try:
        completion = await agenerate(
            A.build_messages(node.question, hits),
            role=A.ANSWER_ROLE,
            max_tokens=_sub_max_tokens(),
            context=run.turn.ctx("research.subanswer"),
        )
    except LLMError as exc:
        node.status, node.answer = "failed", str(exc)[:200]
        return
    run.spend(completion)
    mapping = {i: run.number(h) for i, h in enumerate(hits, start=1)}
    node.answer = A.renumber(completion.text.strip(), mapping)[:600]
    node.citations = sorted(mapping.values())
    node.status = "answered"


async def _expand(run: Run, node: Node, list_id: str) -> None:
    if node.depth >= run.depth:
        return
    limit = 3 if node.depth == 0 else 2
    for i, question in enumerate(await _plan(run, node, limit), start=1):
        child = Node(path=f"{node.path}-{i}", question=question, depth=node.depth + 1)
        node.children.append(child)
        await run.node_frame(child, list_id)
    await run.budget_frame()
    for child in node.children:
        await _answer_node(run, child)
        await run.update_frame(child)
        await run.budget_frame()
        await _expand(run, child, f"{run.tree_id}-{child.path}-children")


async def research_turn(turn: Turn) -> Message:
    """Sub-questions (structured), each retrieved and answered, then a streamed synthesis."""
    depth, budget = MODES[turn.mode]
    run = Run(turn=turn, depth=depth, budget=budget)
    root = Node(path="n", question=turn.standalone, depth=0, status="researching")
    header = await sync_to_async(render_to_string)(
        "research/_tree.html", {"tree_id": run.tree_id, "root": root, "mode": turn.mode, "run": run}
    )
    await turn.send(header)
    await _expand(run, root, f"{run.tree_id}-n-children")
    # The main question is always retrieved too, so the synthesis has direct evidence.
    for hit in await _search(turn, turn.standalone, ANSWER_K):
        run.number(hit)
    hits = run.hits[:SYNTHESIS_PASSAGES]
    tree = {**root.as_dict(), "depth": depth, "budget": budget}
    await turn.send(S.assistant_bubble(turn.container, turn.bubble, "Writing the synthesis…"))
    if not hits:
        message = await sync_to_async(A.message_add_answer)(
            thread=turn.thread,
            content=A.REFUSAL,
            kind=Message.Kind.REFUSAL,
            hits=[],
            standalone=turn.standalone,
            mode=turn.mode,
            tree=tree,
            tokens_used=run.used,
            token_budget=budget,
        )
        await _finish(turn, message, [], "no relevant passages · the model was not called", pending_followups=False)
        return message
    notes = [f"- {c.question}: {c.answer}" for c in root.children if c.status == "answered"]
    max_tokens = max(32, min(A.max_tokens_answer(), run.left()))
    try:
        completion = await stream_completion(
            turn,
            A.build_messages(turn.standalone, hits, notes=notes),
            role=A.ANSWER_ROLE,
            max_tokens=max_tokens,
            context=turn.ctx("research.synthesis"),
        )
    except LLMError as exc:
        await turn.send(S.error(turn.bubble, str(exc)))
        return await sync_to_async(A.message_add_answer)(
            thread=turn.thread,
            content=f"**Error:** {exc}",
            kind=Message.Kind.FAILED,
            hits=[],
            mode=turn.mode,
            tree=tree,
            tokens_used=run.used,
            token_budget=budget,
        )
    run.spend(completion)
    root.status = "answered"
    tree = {**root.as_dict(), "depth": depth, "budget": budget}
    await run.budget_frame()
    text = completion.text.strip()
    message = await sync_to_async(A.message_add_answer)(
        thread=turn.thread,
        content=text,
        kind=Message.Kind.RESEARCH,
        hits=hits,
        standalone=turn.standalone,
        mode=turn.mode,
        call_id=completion.request_id,
        tree=tree,
        tokens_used=run.used,
        token_budget=budget,
        qa_problems=A.qa_problems(text, len(hits)),
    )
    meta = f"{completion.model} · {turn.mode} research · {run.used} of {budget} tokens · {len(hits)} passages"
    await _finish(turn, message, hits, meta, pending_followups=True)
    await _followups(turn, message)
    return message
