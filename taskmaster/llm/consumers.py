"""Playground WebSocket: a staff member's prompt streamed back token by token."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from taskmaster.llm import client, stream
from taskmaster.llm.errors import Cancelled, LLMError
from taskmaster.llm.types import CallContext, Completion

MAX_PROMPT_CHARS = 8000


class StreamingConsumer(AsyncWebsocketConsumer):
    """Shared machinery for pages that stream one generation at a time into a chat log."""

    container = "chat"

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self.authorized(user):
            await self.close(code=4403)
            return
        self.job: asyncio.Task[None] | None = None
        self.request_id: str | None = None
        await self.accept()

    async def authorized(self, user: Any) -> bool:
        return True

    async def disconnect(self, code: int) -> None:
        job = getattr(self, "job", None)
        if job is not None and not job.done():
            job.cancel()

    async def send_html(self, html: str) -> None:
        await self.send(text_data=html)

    async def stop(self) -> None:
        if self.request_id:
            await sync_to_async(client.cancel)(self.request_id)

    async def stream_generation(self, bubble: str, messages: list[dict[str, Any]], **kwargs: Any) -> None:
        """Run one generation, sending queue/token/final frames for ``bubble``."""

        async def on_event(event: dict[str, Any]) -> None:
            kind = event["type"]
            self.request_id = event.get("request_id", self.request_id)
            if kind == "llm.queued":
                await self.send_html(stream.meta(bubble, f"Queued: position {event['position']}"))
            elif kind == "llm.started":
                await self.send_html(stream.meta(bubble, "Generating…"))
            elif kind == "llm.tokens":
                await self.send_html(
                    stream.tokens(bubble, event["text"]) + stream.meta(bubble, f"{event['tps']} tokens/s")
                )

        try:
            completion = await client.agenerate(messages, on_event=on_event, **kwargs)
        except Cancelled:
            await self.send_html(stream.final(bubble, "*Stopped.*", "stopped"))
            return
        except LLMError as exc:
            await self.send_html(stream.error(bubble, str(exc)))
            return
        finally:
            self.request_id = None
        tps = f"{completion.timings.tokens_per_s:.1f} tokens/s" if completion.timings.tokens_per_s else ""
        ttft = f"first token {completion.timings.ttft_ms:.0f} ms" if completion.timings.ttft_ms else ""
        meta = " · ".join(
            x
            for x in (
                completion.model,
                f"{completion.usage.completion_tokens} tokens",
                tps,
                ttft,
                completion.finish_reason,
            )
            if x
        )
        await self.send_html(stream.final(bubble, completion.text, meta, extra_html=await self.final_extra(completion)))

    async def final_extra(self, completion: Completion) -> str:
        """HTML appended under a finished answer (rating buttons, citations); escaped by the caller."""
        return ""


class PlaygroundConsumer(StreamingConsumer):
    async def authorized(self, user: Any) -> bool:
        return bool(user.is_staff)

    async def final_extra(self, completion: Completion) -> str:
        return render_to_string("llm/_feedback.html", {"call_id": completion.request_id})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "{}")
        except json.JSONDecodeError:
            return
        if data.get("action") == "stop":
            await self.stop()
            return
        prompt = str(data.get("prompt", "")).strip()
        if not prompt:
            return
        if self.job is not None and not self.job.done():
            await self.send_html(stream.meta("status", "Wait for the current answer, or press Stop."))
            return
        try:
            max_tokens = max(1, min(int(data.get("max_tokens") or 128), 2048))
            temperature = float(data.get("temperature") or 0.2)
        except ValueError:
            max_tokens, temperature = 128, 0.2
        bubble = f"a-{uuid.uuid4().hex[:10]}"
        await self.send_html(stream.user_bubble(self.container, prompt[:MAX_PROMPT_CHARS]))
        await self.send_html(stream.assistant_bubble(self.container, bubble))
        user = self.scope["user"]
        ctx = CallContext(feature="playground", user_id=user.pk, conversation=f"playground-{user.pk}")
        self.job = asyncio.create_task(
            self.stream_generation(
                bubble,
                [{"role": "user", "content": prompt[:MAX_PROMPT_CHARS]}],
                model=data.get("model") or None,
                max_tokens=max_tokens,
                temperature=temperature,
                context=ctx,
            )
        )
