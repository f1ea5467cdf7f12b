"""Token streaming through the channel layer: order, completeness, queue position, cancel, dead workers."""

from __future__ import annotations

import asyncio
import html
import os
import re
import signal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from taskmaster.llm import CallContext, WorkerLost, agenerate
from taskmaster.llm.consumers import PlaygroundConsumer
from taskmaster.models import LLMCall
from tests.conftest import Workers

LONG_PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


async def test_events_arrive_in_order_and_tokens_add_up_to_the_text(llm: Workers) -> None:
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    completion = await agenerate(
        [{"role": "user", "content": "Name three colours."}],
        max_tokens=32,
        on_event=on_event,
        context=CallContext(feature="test.stream"),
    )
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "llm.done"
    assert "llm.started" in kinds and kinds.index("llm.started") < kinds.index("llm.tokens")
    token_events = [e for e in events if e["type"] == "llm.tokens"]
    assert "".join(e["text"] for e in token_events) == completion.text
    counts = [e["count"] for e in token_events]
    assert counts == sorted(counts) and counts[-1] == completion.usage.completion_tokens


async def test_a_waiting_request_sees_its_queue_position(llm: Workers) -> None:
    first = asyncio.create_task(agenerate(LONG_PROMPT, max_tokens=160, context=CallContext(feature="test.queue")))
    await asyncio.sleep(0.3)
    positions: list[int] = []

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "llm.queued":
            positions.append(event["position"])

    second = await agenerate(
        [{"role": "user", "content": "Hi"}], max_tokens=8, on_event=on_event, context=CallContext(feature="test.queue")
    )
    await first
    assert positions and positions[0] >= 1
    assert second.timings.queue_wait_ms > 0


async def _staff() -> User:
    return await sync_to_async(User.objects.create_user)("staff", "s@example.com", "pw-staff-123", is_staff=True)


async def _frames_until(communicator: WebsocketCommunicator, pattern: str, timeout: float = 60) -> list[str]:
    frames: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await communicator.receive_from(timeout=timeout)
            frames.append(frame)
            if re.search(pattern, frame):
                return frames


async def test_playground_streams_the_one_protocol(llm: Workers) -> None:
    communicator = WebsocketCommunicator(PlaygroundConsumer.as_asgi(), "/ws/llm/playground/")
    communicator.scope["user"] = await _staff()
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"prompt": "Say <b>hi</b> & bye", "max_tokens": 24})
    frames = await _frames_until(communicator, r'class="bubble assistant final')
    await communicator.disconnect()

    assert 'class="bubble user"' in frames[0] and "Say &lt;b&gt;hi&lt;/b&gt; &amp; bye" in frames[0]
    assert 'class="bubble assistant"' in frames[1] and '-text"></span>' in frames[1]
    token_frames = [f for f in frames if 'hx-swap-oob="beforeend"' in f and "-text" in f and "bubble" not in f]
    assert token_frames, frames
    streamed = "".join(html.unescape(re.sub(r"<[^>]+>", "", f.split("</span>")[0])) for f in token_frames)
    row = await sync_to_async(LLMCall.objects.filter(feature="playground").latest)("created_at")
    assert row.outcome == "ok" and row.completion_tokens > 0
    assert streamed.strip()
    final = frames[-1]
    assert 'hx-swap-oob="outerHTML"' in final and "<script" not in final


async def test_stop_ends_generation_within_a_batch_and_frees_the_model(llm: Workers) -> None:
    communicator = WebsocketCommunicator(PlaygroundConsumer.as_asgi(), "/ws/llm/playground/")
    communicator.scope["user"] = await _staff()
    await communicator.connect()
    await communicator.send_json_to({"prompt": LONG_PROMPT[0]["content"], "max_tokens": 600})
    await _frames_until(communicator, r'hx-swap-oob="beforeend">[^<]')
    await communicator.send_json_to({"action": "stop"})
    frames = await _frames_until(communicator, r'class="bubble assistant final')
    await communicator.disconnect()
    assert "Stopped." in frames[-1]
    row = await sync_to_async(LLMCall.objects.filter(feature="playground").latest)("created_at")
    assert row.outcome == "cancelled"
    # The worker is free again at once: a short request completes promptly.
    completion = await agenerate([{"role": "user", "content": "Hi"}], max_tokens=4)
    assert completion.usage.completion_tokens > 0


async def test_killed_worker_turns_the_request_into_a_clear_failure(llm: Workers) -> None:
    started = asyncio.Event()

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "llm.tokens":
            started.set()

    task = asyncio.create_task(
        agenerate(LONG_PROMPT, max_tokens=1500, on_event=on_event, context=CallContext(feature="test.kill"))
    )
    await asyncio.wait_for(started.wait(), timeout=60)
    for pid in llm.child_pids("inference"):
        os.kill(pid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    with pytest.raises(WorkerLost, match="stopped responding"):
        await task
    assert loop.time() - killed_at < 10
    row = await sync_to_async(LLMCall.objects.filter(feature="test.kill").latest)("created_at")
    assert row.outcome == "error" and row.error_class == "worker_lost"
    # Celery replaces the killed pool process; the next request is served normally.
    completion = await agenerate([{"role": "user", "content": "Hi"}], max_tokens=4, timeout=120)
    assert completion.text
