"""Server-sent events exactly as OpenAI sends them.

``data: {chat.completion.chunk}\\n\\n`` for the role, each content delta, the final chunk
with ``finish_reason``, a usage chunk when ``stream_options.include_usage`` is set, then
``data: [DONE]``. The generation runs as a task feeding an asyncio.Queue; when the
client disconnects, Django cancels this iterator and the ``finally`` cancels the task,
which cancels the generation on the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from taskmaster.api.chat import ChatPlan, api_error_for, chunk_json, tool_call_of
from taskmaster.api.errors import ApiError, sse_error
from taskmaster.llm import LLMError
from taskmaster.llm.types import Usage

log = logging.getLogger(__name__)

KEEPALIVE_S = 10.0

# What a running generation reports when it ends: text, finish_reason, usage, extra fields.
Outcome = tuple[str, str, Usage, dict[str, Any]]


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


async def chat_events(
    plan: ChatPlan,
    *,
    model: str,
    run: Callable[[Callable[[str], Awaitable[None]] | None], Awaitable[Outcome]],
    on_finish: Callable[[Usage], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """Drive ``run(on_text)`` and turn it into OpenAI chunks.

    ``run`` receives the text callback (None when deltas must not be streamed, i.e. a
    forced tool call whose arguments are sent whole) and returns the outcome.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_text(text: str) -> None:
        queue.put_nowait(text)

    task = asyncio.ensure_future(run(None if plan.tool is not None else on_text))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    try:
        yield sse(chunk_json(plan, model=model, delta={"role": "assistant", "content": ""}))
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                # An SSE comment: keeps proxies and clients from timing out while queued.
                yield b": keep-alive\n\n"
                continue
            if item is None:
                break
            if item:
                yield sse(chunk_json(plan, model=model, delta={"content": item}))
        try:
            text, finish_reason, usage, extra = task.result()
        except LLMError as exc:
            yield sse_error(api_error_for(exc))
            return
        except ApiError as exc:
            yield sse_error(exc)
            return
        except Exception as exc:
            log.exception("API stream %s failed", plan.id)
            yield sse_error(ApiError(500, f"The server failed: {type(exc).__name__}.", code="server_error"))
            return
        await on_finish(usage)
        if plan.tool is not None:
            call = tool_call_of(plan.tool, text)
            call["index"] = 0
            yield sse(chunk_json(plan, model=model, delta={"tool_calls": [call]}))
            finish_reason = "tool_calls" if finish_reason == "stop" else finish_reason
        yield sse(chunk_json(plan, model=model, delta={}, finish_reason=finish_reason, extra=extra))
        if plan.include_usage:
            yield sse(chunk_json(plan, model=model, usage=usage, extra=extra))
        yield DONE
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LLMError, ApiError):
                await task
