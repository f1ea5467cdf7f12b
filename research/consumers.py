"""The research chat socket: one thread, one answer at a time, streamed with the shared protocol."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404

from research import answer as A
from research import pipeline
from research.models import Collection, Thread
from research.selectors import collections_for, thread_for
from research.services import thread_set_collections
from taskmaster.access import Perm
from taskmaster.llm import stream
from taskmaster.llm.consumers import StreamingConsumer

MAX_QUESTION_CHARS = 2000
MODES = ("answer", *pipeline.MODES)


def _thread(user: Any, thread_id: int, perm: Perm) -> Thread | None:
    try:
        return thread_for(user, perm, pk=thread_id)
    except Http404:
        return None


def _collections(user: Any, thread: Thread, raw: Any) -> list[Collection]:
    values = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    ids = [int(v) for v in values if str(v).isdigit()]
    return list(collections_for(user, Perm.VIEW, team=thread.team).filter(pk__in=ids))


class ResearchConsumer(StreamingConsumer):
    container = "chat"

    async def authorized(self, user: Any) -> bool:
        self.thread_id = int(self.scope["url_route"]["kwargs"]["thread_id"])
        return await sync_to_async(_thread)(user, self.thread_id, Perm.VIEW) is not None

    async def status(self, text: str) -> None:
        await self.send_html(stream.meta("status", text))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "{}")
        except json.JSONDecodeError:
            await self.status("That message was not valid JSON.")
            return
        if not isinstance(data, dict):
            return
        if data.get("action") == "stop":
            await self.stop()
            return
        user = self.scope["user"]
        # Re-checked per question: access may have been revoked since connecting.
        thread = await sync_to_async(_thread)(user, self.thread_id, Perm.EDIT)
        if thread is None:
            await self.status("Only the thread's owner can ask questions here.")
            return
        question = " ".join(str(data.get("question", "")).split())[:MAX_QUESTION_CHARS]
        if not question:
            await self.status("Type a question first.")
            return
        mode = str(data.get("mode") or "answer")
        if mode not in MODES:
            await self.status(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
            return
        collections = await sync_to_async(_collections)(user, thread, data.get("collections"))
        if not collections:
            await self.status("Pick at least one collection to search.")
            return
        if self.job is not None and not self.job.done():
            await self.status("Wait for the current answer, or press Stop.")
            return
        await self.status("")
        await sync_to_async(thread_set_collections)(thread=thread, collections=collections)
        standalone = await sync_to_async(A.standalone_query)(thread=thread, question=question)
        await sync_to_async(A.message_add_question)(thread=thread, question=question, standalone=standalone, mode=mode)
        bubble = f"a-{uuid.uuid4().hex[:10]}"
        await self.send_html(stream.user_bubble(self.container, question))
        turn = pipeline.Turn(
            thread=thread,
            user_id=user.pk,
            question=question,
            mode=mode,
            collections=collections,
            bubble=bubble,
            send=self.send_html,
            on_request=self._remember,
            standalone=standalone,
            container=self.container,
        )
        if mode == "answer":
            await self.send_html(stream.assistant_bubble(self.container, bubble))
            self.job = asyncio.create_task(self._run(pipeline.answer_turn(turn)))
        else:
            self.job = asyncio.create_task(self._run(pipeline.research_turn(turn)))

    async def _run(self, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.status(f"Research failed: {type(exc).__name__}: {exc}")
            raise

    def _remember(self, request_id: str | None) -> None:
        self.request_id = request_id
