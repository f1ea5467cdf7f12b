"""Fault injection for tests: each failure class produced at an edge the project controls.

Switched on by ``settings.FAULT_INJECTION`` or the ``TASKMASTER_FAULTS`` environment
variable, and refused outright when DEBUG is off and ENVIRONMENT is "production", so a
stray switch cannot break a live site. Every injector calls :func:`require` first.

The runtime itself is core code, so faults are made from the outside:

* model file missing / corrupt: a registry row whose file is absent, or whose recorded
  sha256 does not match the file (served on the default chat queue, so a real worker tries it);
* truncated output: a schema call with a tiny ``max_tokens``;
* context overflow: a prompt longer than the model's context (cheaply: a small-context row of the
  default file, :func:`small_context_model`);
* worker lost: ``kill -9`` of the inference worker's pool child mid-generation
  (:func:`kill_pids`; the caller declares the worker lost after ``LLM_WORKER_SILENCE_S``);
* model unavailable: the fallback (or any) role pointed at a model that cannot load.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from django.conf import settings

from taskmaster.env import env_bool


class FaultInjectionRefused(RuntimeError):
    pass


def enabled() -> bool:
    return bool(getattr(settings, "FAULT_INJECTION", False)) or env_bool("TASKMASTER_FAULTS", False)


def require() -> None:
    if not settings.DEBUG and getattr(settings, "ENVIRONMENT", "") == "production":
        raise FaultInjectionRefused("fault injection is refused in production (DEBUG off, ENVIRONMENT=production)")
    if not enabled():
        raise FaultInjectionRefused("fault injection is off: set FAULT_INJECTION=True or TASKMASTER_FAULTS=1")


def broken_model(*, name: str, problem: str = "missing", like: str | None = None) -> Any:
    """A chat model row that fails to load on a real worker: ``problem`` is "missing" or "corrupt"."""
    require()
    from taskmaster.llm.defaults import CHAT_NAME
    from taskmaster.llm.models import LLMModel

    base = LLMModel.objects.get(name=like or CHAT_NAME)
    if problem == "missing":
        file_path, sha = f"faults/{name}-missing.gguf", ""
    elif problem == "corrupt":
        file_path, sha = base.file_path, "0" * 64  # the real file, but not the bytes that were recorded
    else:
        raise ValueError(f"unknown model problem {problem!r}")
    return LLMModel.objects.create(
        name=name,
        kind=base.kind,
        file_path=file_path,
        sha256=sha,
        context_length=base.context_length,
        roles=["main", "fallback"],
        queue=base.queue_name,  # a live worker picks it up and finds the file broken
        available=True,
    )


def small_context_model(*, name: str, context_length: int = 512) -> Any:
    """The default chat model's file served with a small context, so an overflow is cheap to produce."""
    require()
    from taskmaster.llm.defaults import CHAT_NAME
    from taskmaster.llm.models import LLMModel

    base = LLMModel.objects.get(name=CHAT_NAME)
    return LLMModel.objects.create(
        name=name,
        kind=base.kind,
        file_path=base.file_path,
        sha256=base.sha256,
        context_length=context_length,
        roles=["main"],
        queue=base.queue_name,
        available=True,
    )


def oversized_messages(*, context_length: int, factor: int = 3) -> list[dict[str, str]]:
    """A conversation whose text is several times the model's context (in tokens)."""
    require()
    filler = " ".join(f"word{i % 97}" for i in range(context_length * factor))
    return [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Earlier notes: " + filler},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Background: " + filler + "\nQuestion: say OK."},
    ]


def truncating_kwargs() -> dict[str, Any]:
    """Call arguments that make a schema call stop at max_tokens before its JSON is complete."""
    require()
    return {"max_tokens": 2}


def kill_pids(pids: list[int]) -> int:
    """``kill -9`` the given processes (a worker's pool children); returns how many were signalled."""
    require()
    n = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            continue
    return n
