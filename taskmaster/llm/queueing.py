"""Redis bookkeeping around the Celery queues: FIFO positions, cancel flags, stickiness."""

from __future__ import annotations

import functools
import time

import redis
from django.conf import settings

_TTL = 3600


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def group_name(request_id: str) -> str:
    return f"llm.req.{request_id}"


def enqueued(queue: str, request_id: str) -> None:
    r = _redis()
    r.zadd(f"llmq:{queue}", {request_id: time.time()})
    r.expire(f"llmq:{queue}", _TTL)


def dequeued(queue: str, request_id: str) -> None:
    _redis().zrem(f"llmq:{queue}", request_id)


def position(queue: str, request_id: str) -> int | None:
    """1-based place in the queue, or None once a worker has taken the request."""
    rank = _redis().zrank(f"llmq:{queue}", request_id)
    return None if rank is None else int(rank) + 1  # type: ignore[arg-type]


def depth(queue: str) -> int:
    r = _redis()
    # Drop entries of requests abandoned long ago (their waiter died with the process).
    r.zremrangebyscore(f"llmq:{queue}", 0, time.time() - _TTL)
    return int(r.zcard(f"llmq:{queue}"))  # type: ignore[arg-type]


def cancel(request_id: str) -> None:
    _redis().set(f"llm:cancel:{request_id}", "1", ex=_TTL)


def is_cancelled(request_id: str) -> bool:
    return bool(_redis().exists(f"llm:cancel:{request_id}"))


def remember_worker(conversation: str, queue: str) -> None:
    """Follow-up turns of a conversation go back to the queue that served it (warm prefix)."""
    _redis().set(f"llm:sticky:{conversation}", queue, ex=600)


def sticky_queue(conversation: str) -> str | None:
    value = _redis().get(f"llm:sticky:{conversation}")
    return value.decode() if isinstance(value, bytes) else None
