"""Diagnosis: which cause a failed call, job or exception belongs to, and how severe it is."""

from __future__ import annotations

import re

from recovery.models import Cause, Severity

# error_class as the ledger records it -> cause.
ERROR_CLASS_CAUSE: dict[str, str] = {
    "model_file": Cause.MODEL_FILE,
    "model_unavailable": Cause.MODEL_UNAVAILABLE,
    "out_of_memory": Cause.OUT_OF_MEMORY,
    "context_overflow": Cause.CONTEXT_OVERFLOW,
    "truncated": Cause.TRUNCATED,
    "schema_validation": Cause.SCHEMA_VALIDATION,
    "timeout": Cause.TIMEOUT,
    "worker_lost": Cause.WORKER_LOST,
    "retrieval_empty": Cause.RETRIEVAL_EMPTY,
    "rate_limited": Cause.RATE_LIMITED,
    "qa_failed": Cause.QA_FAILED,
    "database_unavailable": Cause.DATABASE_UNAVAILABLE,
    "broker_unavailable": Cause.BROKER_UNAVAILABLE,
}

SEVERITY: dict[str, int] = {
    Cause.MODEL_FILE: Severity.CRITICAL,
    Cause.MODEL_UNAVAILABLE: Severity.CRITICAL,
    Cause.OUT_OF_MEMORY: Severity.CRITICAL,
    Cause.DATABASE_UNAVAILABLE: Severity.CRITICAL,
    Cause.BROKER_UNAVAILABLE: Severity.CRITICAL,
    Cause.WORKER_LOST: Severity.ERROR,
    Cause.TIMEOUT: Severity.ERROR,
    Cause.CONTEXT_OVERFLOW: Severity.WARNING,
    Cause.TRUNCATED: Severity.WARNING,
    Cause.SCHEMA_VALIDATION: Severity.WARNING,
    Cause.QA_FAILED: Severity.WARNING,
    Cause.RATE_LIMITED: Severity.WARNING,
    Cause.RETRIEVAL_EMPTY: Severity.INFO,
    Cause.UNKNOWN: Severity.ERROR,
}

# Job errors are free text (the job stores str(exc)); these patterns recognise the
# infrastructure failures that never reach the ledger.
_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"OperationalError|InterfaceError|could not connect to server|connection to server .* failed|"
            r"server closed the connection|terminating connection",
            re.I,
        ),
        Cause.DATABASE_UNAVAILABLE,
    ),
    (
        re.compile(
            r"redis\.exceptions\.(Connection|Timeout)Error|Error \d+ connecting to|Connection refused.*6379|"
            r"kombu\.exceptions\.OperationalError|broker.*unavailable|lost the reply channel",
            re.I,
        ),
        Cause.BROKER_UNAVAILABLE,
    ),
    (re.compile(r"rate.?limit|429|too many requests", re.I), Cause.RATE_LIMITED),
    (re.compile(r"out of memory|MemoryError", re.I), Cause.OUT_OF_MEMORY),
    (re.compile(r"stopped responding|worker.*(lost|killed)|WorkerLostError", re.I), Cause.WORKER_LOST),
    (re.compile(r"does not fit .* context|exceed context window", re.I), Cause.CONTEXT_OVERFLOW),
    (re.compile(r"cut off at max_tokens|truncated", re.I), Cause.TRUNCATED),
    (re.compile(r"failed QA", re.I), Cause.QA_FAILED),
    (re.compile(r"model file|not a GGUF|corrupt", re.I), Cause.MODEL_FILE),
    (re.compile(r"is unavailable|no model (is assigned|named)", re.I), Cause.MODEL_UNAVAILABLE),
    (re.compile(r"schema|validation", re.I), Cause.SCHEMA_VALIDATION),
    (re.compile(r"no result from .* within|timed? ?out", re.I), Cause.TIMEOUT),
]


def cause_of_error_class(error_class: str) -> str:
    return ERROR_CLASS_CAUSE.get(error_class, Cause.UNKNOWN)


def cause_of_text(text: str) -> str:
    for pattern, cause in _TEXT_PATTERNS:
        if pattern.search(text):
            return cause
    return Cause.UNKNOWN


def cause_of_exception(exc: BaseException) -> str:
    """Classify an exception by its type first (LLM errors, DB and broker errors), then by its text."""
    error_class = getattr(exc, "error_class", None)
    if isinstance(error_class, str) and error_class in ERROR_CLASS_CAUSE:
        return ERROR_CLASS_CAUSE[error_class]
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return Cause.DATABASE_UNAVAILABLE
    try:
        import redis.exceptions

        if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return Cause.BROKER_UNAVAILABLE
    except ImportError:  # pragma: no cover - redis is a hard dependency
        pass
    return cause_of_text(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")


def severity_of(cause: str) -> int:
    return SEVERITY.get(cause, Severity.ERROR)


def fingerprint(*, cause: str, feature: str, model_name: str) -> str:
    return f"{cause}|{feature or '-'}|{model_name or '-'}"[:200]
