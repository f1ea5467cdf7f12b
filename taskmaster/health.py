"""Checks behind /healthz. Each returns None when fine, or a short reason."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the reason is reported
        connection.close()
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def check_redis() -> str | None:
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_celery() -> str | None:
    from taskmaster.celery import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception as exc:  # noqa: BLE001 - broker errors surface as many types
        return f"{type(exc).__name__}: {exc}"
    if not replies:
        return "no Celery worker answered within 1 s"
    return None


def check_models() -> str | None:
    from taskmaster.llm.registry import default_models_problems

    try:
        problems = default_models_problems()
    except Exception as exc:  # noqa: BLE001 - e.g. database down: reported by that check too
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(problems) or None


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "models": check_models,
}


def run_checks() -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        problem = check()
        results[name] = {"ok": problem is None} | ({"error": problem} if problem else {})
    return results
