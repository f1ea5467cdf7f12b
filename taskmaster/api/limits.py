"""Per-user request rate and daily token quota, counted in Redis.

Fixed windows: requests per calendar minute, tokens per UTC day. They are cheap, shared
by every web process and forget themselves (keys expire).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings

from taskmaster.api.errors import ApiError


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int  # 0 = unlimited
    daily_token_quota: int  # 0 = unlimited


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")


def _seconds_to_midnight(now: float) -> int:
    current = datetime.fromtimestamp(now, UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - current).total_seconds()) + 1)


def hit_rate(user_id: int, limits: Limits) -> None:
    """Count one request; 429 with Retry-After when the minute's budget is spent."""
    if limits.requests_per_minute <= 0:
        return
    now = time.time()
    key = f"tm:api:rpm:{user_id}:{int(now // 60)}"
    pipe = _redis().pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count > limits.requests_per_minute:
        retry = max(1, 60 - int(now) % 60)
        raise ApiError(
            429,
            f"Rate limit reached: {limits.requests_per_minute} requests per minute. Retry in {retry} s.",
            code="rate_limit_exceeded",
            type="requests",
            headers={"Retry-After": str(retry)},
        )


def tokens_used_today(user_id: int) -> int:
    value = _redis().get(f"tm:api:tok:{user_id}:{_day(time.time())}")
    return int(value) if value else 0  # type: ignore[arg-type]


def check_quota(user_id: int, limits: Limits) -> None:
    """429 with Retry-After (until UTC midnight) once today's tokens reach the quota."""
    if limits.daily_token_quota <= 0:
        return
    used = tokens_used_today(user_id)
    if used >= limits.daily_token_quota:
        retry = _seconds_to_midnight(time.time())
        raise ApiError(
            429,
            f"Daily token quota reached: {used} of {limits.daily_token_quota} tokens used today (UTC). "
            f"It resets in {retry} s.",
            code="insufficient_quota",
            type="tokens",
            headers={"Retry-After": str(retry)},
        )


def add_tokens(user_id: int, tokens: int) -> int:
    if tokens <= 0:
        return tokens_used_today(user_id)
    key = f"tm:api:tok:{user_id}:{_day(time.time())}"
    pipe = _redis().pipeline()
    pipe.incrby(key, tokens)
    pipe.expire(key, 2 * 86400)
    return int(pipe.execute()[0])
