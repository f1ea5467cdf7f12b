"""The caller side of the runtime: enqueue on the model's queue, then await the stream.

The caller joins the request's channel group *before* enqueueing, so it cannot miss
an early event. While queued it reports its FIFO position; once started it expects
tokens or heartbeats, and declares the worker lost after a few silent seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import redis
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from pydantic import BaseModel

from taskmaster.llm import ledger, queueing, registry
from taskmaster.llm.errors import (
    ERROR_CLASSES,
    BrokerUnavailable,
    Cancelled,
    LLMError,
    LLMTimeout,
    OutputTruncated,
    WorkerLost,
)
from taskmaster.llm.models import LLMModel, ModelKind
from taskmaster.llm.schema import json_schema, validate
from taskmaster.llm.types import CallContext, Completion, Timings, Usage

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None]]

# A router may be registered by an app that measures models (analytics); the core
# only knows the hook, never the app.
_router: Callable[[str, CallContext], tuple[LLMModel, dict[str, Any]] | None] | None = None


def set_router(router: Callable[[str, CallContext], tuple[LLMModel, dict[str, Any]] | None] | None) -> None:
    global _router
    _router = router


@dataclass
class RecoveryAttempt:
    """What a recovery handler learns about a failed call (the recovery app registers one)."""

    error: LLMError
    attempt: int  # 1 after the first failure
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]  # the call's keyword arguments: role, model, max_tokens, schema, sampling...
    context: CallContext
    # Tokens already reached a listener (a page, an SSE client): a retry would show them twice.
    streamed: bool
    # False when the caller passed ``recover=False``: diagnose the failure, never retry it.
    recover: bool = True


RecoveryHandler = Callable[[RecoveryAttempt], Awaitable[dict[str, Any] | None]]
_recovery: RecoveryHandler | None = None


def set_recovery(handler: RecoveryHandler | None) -> None:
    """Register the one recovery handler; it returns changed call arguments to retry, or None to give up."""
    global _recovery
    _recovery = handler


def _choose_model(role: str, model: str | None, ctx: CallContext) -> tuple[LLMModel, dict[str, Any]]:
    if model:
        return registry.model_by_name(model), {"reason": "requested by caller"}
    if _router is not None:
        routed = _router(role, ctx)
        if routed is not None:
            return routed
    return registry.model_for_role(role), {"reason": f"default for role {role}"}


def _prepare(
    *,
    kind: str,
    role: str,
    model: str | None,
    ctx: CallContext,
    body: dict[str, Any],
    input_chars: int,
    stream_to: str | None,
) -> tuple[dict[str, Any], LLMModel, dict[str, Any]]:
    chosen, routing = _choose_model(role, model, ctx)
    if kind == ModelKind.EMBEDDING and chosen.kind != ModelKind.EMBEDDING:
        raise LLMError(f"{chosen.name} is not an embedding model")
    if kind == ModelKind.CHAT and chosen.kind != ModelKind.CHAT:
        raise LLMError(f"{chosen.name} is not a chat model")
    queue = chosen.queue_name
    if ctx.conversation:
        queue = queueing.sticky_queue(ctx.conversation) or queue
    payload = {
        "request_id": str(uuid.uuid4()),
        "kind": kind,
        "role": role,
        "model_id": chosen.pk,
        "model_name": chosen.name,
        "queue": queue,
        "context": ctx.__dict__,
        "stream_to": stream_to,
        "input_chars": input_chars,
        "routing": routing,
        **body,
    }
    return payload, chosen, routing


_loop_layers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _loop_layer() -> Any:
    # channels_redis keeps receive() state (a lock, a count, the owning loop) on the layer
    # object. Every async_to_sync() call runs on a fresh loop, and a receive an earlier loop
    # left behind makes the next loop's receive() fail, so the reply never arrives. One layer
    # instance per event loop keeps callers on different loops independent.
    loop = asyncio.get_running_loop()
    layer = _loop_layers.get(loop)
    if layer is None:
        layer = _loop_layers[loop] = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    return layer


async def _run(payload: dict[str, Any], on_event: EventHandler | None, timeout: float | None) -> dict[str, Any]:
    try:
        return await _exchange(payload, on_event, timeout)
    except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
        # Typed, so recovery can diagnose it and callers show one clear line, not a driver trace.
        raise BrokerUnavailable(f"the message broker (Redis) is unreachable: {exc}") from exc


async def _exchange(payload: dict[str, Any], on_event: EventHandler | None, timeout: float | None) -> dict[str, Any]:
    from taskmaster.llm.tasks import llm_run

    layer = _loop_layer()
    request_id = payload["request_id"]
    group = queueing.group_name(request_id)
    # The default "specific." prefix on purpose: channels_redis serves every process-local
    # channel through one receive lock and one Redis list per prefix; a channel with another
    # prefix starves while a consumer in this process holds the lock for its own.
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    inbox: asyncio.Queue[Event] = asyncio.Queue()
    # One receive() that is never interrupted: channels_redis drops a channel's buffered
    # messages when a receive() on it is cancelled, so polling it with wait_for() loses
    # tokens as soon as another consumer in this process shares the layer.
    reader = asyncio.create_task(_pump(layer, channel, inbox))
    queue = payload["queue"]
    try:
        payload["enqueued_at"] = time.time()
        await sync_to_async(queueing.enqueued)(queue, request_id)
        await sync_to_async(llm_run.apply_async)(args=(payload,), queue=queue)
        return await _wait(inbox, reader, payload, on_event, timeout or settings.LLM_MAX_WAIT_S)
    except asyncio.CancelledError:
        # The caller went away (socket closed, Stop pressed): free the model promptly.
        await sync_to_async(queueing.cancel)(request_id)
        raise
    finally:
        reader.cancel()
        # Let the cancellation land (a receive() left pending keeps the layer bound to this
        # loop), but never wait long for it: a Redis read can swallow a cancellation.
        await asyncio.wait({reader}, timeout=2)
        if reader.done() and not reader.cancelled():
            reader.exception()  # already reported as BrokerUnavailable, or moot once the call finished
        await layer.group_discard(group, channel)


async def _pump(layer: Any, channel: str, inbox: asyncio.Queue[Event]) -> None:
    while True:
        await inbox.put(await layer.receive(channel))


async def _wait(
    inbox: asyncio.Queue[Event],
    reader: asyncio.Task[None],
    payload: dict[str, Any],
    on_event: EventHandler | None,
    timeout: float,
) -> dict[str, Any]:
    request_id, queue = payload["request_id"], payload["queue"]
    deadline = time.monotonic() + timeout
    started = False
    last_heard = time.monotonic()
    last_position: int | None = None
    silence = float(settings.LLM_WORKER_SILENCE_S)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            await sync_to_async(queueing.cancel)(request_id)
            raise LLMTimeout(f"no result from {payload['model_name']} within {timeout:.0f} s")
        try:
            event = await asyncio.wait_for(inbox.get(), timeout=min(0.5, remaining))
        except TimeoutError:
            if reader.done() and inbox.empty():
                await sync_to_async(queueing.cancel)(request_id)
                # Without this a broken reply channel looks like a very long queue.
                raise BrokerUnavailable(
                    f"lost the reply channel for {payload['model_name']}: {reader.exception()!r}"
                ) from None
            if started and time.monotonic() - last_heard > silence:
                await sync_to_async(queueing.cancel)(request_id)
                raise WorkerLost(
                    f"the worker running {payload['model_name']} stopped responding "
                    f"(no heartbeat for {silence:.0f} s); it was probably killed"
                ) from None
            if not started:
                position = await sync_to_async(queueing.position)(queue, request_id)
                if position is not None and position != last_position and on_event is not None:
                    await on_event({"type": "llm.queued", "position": position, "request_id": request_id})
                last_position = position
            continue
        last_heard = time.monotonic()
        kind = event.get("type")
        if kind == "llm.started":
            started = True
        if on_event is not None and kind != "llm.heartbeat":
            await on_event(event)
        if kind == "llm.done":
            result: dict[str, Any] = event["result"]
            return result
        if kind == "llm.error":
            cls = ERROR_CLASSES.get(event.get("error_class", ""), LLMError)
            raise cls(event.get("message", "generation failed"))


def _record_lost(payload: dict[str, Any], exc: LLMError) -> None:
    ctx = CallContext(**payload["context"])
    ledger.CallRecord(
        request_id=payload["request_id"],
        context=ctx,
        kind=payload["kind"],
        role=payload["role"],
        model_id=payload["model_id"],
        model_name=payload["model_name"],
        input_chars=payload["input_chars"],
        schema_name=payload.get("schema_name", ""),
        routing=payload.get("routing", {}),
    ).fail(exc)


def _completion(result: dict[str, Any], request_id: str, schema: type[BaseModel] | None) -> Completion:
    timings = result.get("timings", {})
    completion = Completion(
        request_id=request_id,
        model=result["model"],
        text=result["text"],
        finish_reason=result["finish_reason"],
        usage=Usage(**result["usage"]),
        timings=Timings(**timings),
        cache_hit=result.get("cache_hit", False),
        worker=result.get("worker", ""),
    )
    if schema is not None:
        if completion.finish_reason == "length":
            ledger.mark(
                request_id, outcome="error", error_class="truncated", error_message="schema output cut at max_tokens"
            )
            raise OutputTruncated(
                f"{schema.__name__} output was cut off at max_tokens={completion.usage.completion_tokens}",
                text=completion.text,
                completion_tokens=completion.usage.completion_tokens,
            )
        try:
            completion.parsed = validate(schema, completion.text)
        except LLMError as exc:
            ledger.mark(request_id, outcome="error", error_class=exc.error_class, error_message=str(exc)[:4000])
            raise
    return completion


def _ctx(context: CallContext | None, feature: str | None) -> CallContext:
    ctx = context or CallContext()
    if feature:
        ctx.feature = feature
    return ctx


async def _agenerate_once(
    messages: list[dict[str, Any]],
    *,
    role: str = "main",
    model: str | None = None,
    schema: type[BaseModel] | None = None,
    json_schema_dict: dict[str, Any] | None = None,
    json_mode: bool = False,
    max_tokens: int = 256,
    stream_to: str | None = None,
    on_event: EventHandler | None = None,
    context: CallContext | None = None,
    feature: str | None = None,
    timeout: float | None = None,
    **sampling: Any,
) -> Completion:
    ctx = _ctx(context, feature)
    schema_dict = json_schema(schema) if schema is not None else json_schema_dict
    body = {
        "messages": messages,
        "max_tokens": max_tokens,
        "sampling": {k: v for k, v in sampling.items() if v is not None},
        "json_schema": schema_dict,
        "json_mode": json_mode,
        "schema_name": schema.__name__ if schema is not None else ("custom" if schema_dict else ""),
    }
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    payload, chosen, _ = await sync_to_async(_prepare)(
        kind=ModelKind.CHAT, role=role, model=model, ctx=ctx, body=body, input_chars=chars, stream_to=stream_to
    )
    if max_tokens >= chosen.context_length:
        raise LLMError(
            f"max_tokens={max_tokens} does not fit {chosen.name}'s context of {chosen.context_length} tokens"
        )
    try:
        result = await _run(payload, on_event, timeout)
    except (WorkerLost, LLMTimeout) as exc:
        await sync_to_async(_record_lost)(payload, exc)
        exc.request_id = payload["request_id"]
        raise
    except LLMError as exc:
        exc.request_id = payload["request_id"]
        raise
    try:
        return await sync_to_async(_completion)(result, payload["request_id"], schema)
    except LLMError as exc:
        exc.request_id = payload["request_id"]
        raise


async def agenerate(messages: list[dict[str, Any]], *, recover: bool = True, **kwargs: Any) -> Completion:
    """Generate a chat completion on a worker; see the module docstring of taskmaster.llm.

    When a call fails and a recovery handler is registered (``set_recovery``), the handler
    may answer with changed arguments (a larger ``max_tokens``, another ``model``, shorter
    ``messages``, a ``delay`` in seconds before trying again); the call is then retried.
    Cancellation is never retried. With ``recover=False`` the handler still sees the failure
    (so it is diagnosed) but the call is never retried: the caller owns its retries.
    """
    attempt = 0
    while True:
        streamed = False
        listener: EventHandler | None = kwargs.get("on_event")

        async def watch(event: Event, listener: EventHandler | None = listener) -> None:
            nonlocal streamed
            if event.get("type") == "llm.tokens" and listener is not None:
                streamed = True
            if listener is not None:
                await listener(event)

        try:
            return await _agenerate_once(messages, **{**kwargs, "on_event": watch})
        except LLMError as exc:
            if _recovery is None or isinstance(exc, Cancelled):
                raise
            attempt += 1
            change = await _recovery(
                RecoveryAttempt(
                    error=exc,
                    attempt=attempt,
                    messages=messages,
                    kwargs=dict(kwargs),
                    context=_ctx(kwargs.get("context"), kwargs.get("feature")),
                    streamed=streamed or bool(kwargs.get("stream_to")),
                    recover=recover,
                )
            )
            if not change or not recover:
                raise
            change = dict(change)
            delay = float(change.pop("delay", 0) or 0)
            messages = change.pop("messages", messages)
            kwargs = {**kwargs, **change}
            if delay > 0:
                await asyncio.sleep(delay)


def generate(messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """Blocking form of :func:`agenerate` for services, Celery jobs and the shell."""
    return async_to_sync(agenerate)(messages, **kwargs)


async def aembed(
    texts: list[str] | str,
    *,
    role: str = "embedding",
    model: str | None = None,
    context: CallContext | None = None,
    feature: str | None = None,
    timeout: float | None = None,
) -> list[list[float]]:
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        return []
    ctx = _ctx(context, feature or (context.feature if context else "embed"))
    payload, _, _ = await sync_to_async(_prepare)(
        kind=ModelKind.EMBEDDING,
        role=role,
        model=model,
        ctx=ctx,
        body={"texts": items},
        input_chars=sum(len(t) for t in items),
        stream_to=None,
    )
    try:
        result = await _run(payload, None, timeout)
    except (WorkerLost, LLMTimeout) as exc:
        await sync_to_async(_record_lost)(payload, exc)
        raise
    vectors: list[list[float]] = result["vectors"]
    return vectors


def embed(texts: list[str] | str, **kwargs: Any) -> list[list[float]]:
    return async_to_sync(aembed)(texts, **kwargs)


def cancel(request_id: str) -> None:
    queueing.cancel(request_id)
