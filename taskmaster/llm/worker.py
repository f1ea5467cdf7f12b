"""The inference side: runs inside Celery worker processes, never in the web process.

Each worker process loads a model lazily (after fork) and keeps it warm; one
generation at a time per ``Llama`` instance. Tokens go out in small batches to the
request's channel group; a heartbeat thread tells the waiting client the worker is
alive, so a killed worker is noticed within seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from taskmaster.llm import ledger, queueing
from taskmaster.llm.errors import (
    Cancelled,
    ContextOverflow,
    LLMError,
    ModelFileError,
    OutOfMemory,
)
from taskmaster.llm.models import LLMModel, ModelLoadStatus
from taskmaster.llm.registry import file_problem
from taskmaster.llm.types import CallContext

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


_loaded: dict[tuple[object, ...], Llama] = {}
_load_lock = threading.Lock()


def _load_key(model: LLMModel) -> tuple[object, ...]:
    # Keyed by what shapes the loaded instance, not by row id: a registry edit that
    # changes threads or context reloads, while re-creating an identical row does not.
    return (
        str(model.path),
        model.sha256,
        model.context_length,
        model.n_threads,
        model.n_batch,
        model.n_gpu_layers,
        model.chat_format,
        model.chat_template,
        model.kind,
    )


def _set_status(model: LLMModel, state: str, error: str = "", seconds: float | None = None) -> None:
    ModelLoadStatus.objects.update_or_create(
        model=model, worker=worker_name(), defaults={"state": state, "error": error[:2000], "load_seconds": seconds}
    )


def load(model: LLMModel) -> Llama:
    """The warm ``Llama`` for ``model`` in this process, loading (and verifying) it once."""
    from llama_cpp import Llama

    key = _load_key(model)
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        for old_key in [k for k in _loaded if k[0] == key[0]]:
            # Same file, other settings: free the old instance before loading anew.
            _loaded.pop(old_key).close()
        problem = file_problem(model)
        if problem:
            LLMModel.objects.filter(pk=model.pk).update(available=False, last_error=problem)
            _set_status(model, ModelLoadStatus.State.ERROR, problem)
            raise ModelFileError(problem)
        _set_status(model, ModelLoadStatus.State.LOADING)
        started = time.monotonic()
        kwargs: dict[str, Any] = {
            "model_path": str(model.path),
            "n_ctx": model.context_length,
            "n_threads": model.n_threads or cpu_count(),
            "n_batch": model.n_batch,
            "n_gpu_layers": model.n_gpu_layers,
            "verbose": False,
            "embedding": model.kind == "embedding",
        }
        if model.chat_format:
            kwargs["chat_format"] = model.chat_format
        try:
            llm = Llama(**kwargs)
        except MemoryError as exc:
            _set_status(model, ModelLoadStatus.State.ERROR, "out of memory")
            raise OutOfMemory(f"out of memory loading {model.name}") from exc
        except (ValueError, RuntimeError) as exc:
            message = f"llama.cpp could not load {model.path.name}: {exc}"
            LLMModel.objects.filter(pk=model.pk).update(available=False, last_error=message)
            _set_status(model, ModelLoadStatus.State.ERROR, message)
            raise ModelFileError(message) from exc
        if model.chat_template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos = llm._model.token_get_text(llm.token_eos())
            bos = llm._model.token_get_text(llm.token_bos())
            llm.chat_handler = Jinja2ChatFormatter(
                template=model.chat_template, eos_token=eos, bos_token=bos
            ).to_chat_handler()
        _set_status(model, ModelLoadStatus.State.LOADED, seconds=time.monotonic() - started)
        _loaded[key] = llm
        return llm


class Publisher:
    """Batches tokens (every ~50 ms or 16 tokens) and sends them to the request's groups."""

    def __init__(self, request_id: str, extra_group: str | None) -> None:
        self.groups = [queueing.group_name(request_id)] + ([extra_group] if extra_group else [])
        self.request_id = request_id
        self.layer = get_channel_layer()
        self.buffer: list[str] = []
        self.count = 0
        self.last_flush = time.monotonic()
        self.batch_s = settings.LLM_TOKEN_BATCH_MS / 1000
        self.batch_n = settings.LLM_TOKEN_BATCH_SIZE
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        event = {"request_id": self.request_id, **event}
        with self._lock:
            for group in self.groups:
                async_to_sync(self.layer.group_send)(group, event)  # type: ignore[union-attr]

    def token(self, text: str) -> bool:
        """Queue a token; returns True when a batch went out (a good moment to check cancel)."""
        self.buffer.append(text)
        self.count += 1
        # The first token goes out alone: time to first token is what a person waits for.
        if self.count == 1 or len(self.buffer) >= self.batch_n or time.monotonic() - self.last_flush >= self.batch_s:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        if not self.buffer:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        text, self.buffer = "".join(self.buffer), []
        self.last_flush = time.monotonic()
        self.send({"type": "llm.tokens", "text": text, "count": self.count, "tps": round(self.count / elapsed, 1)})


class Heartbeat:
    """Tells waiting clients this worker is alive while a request runs."""

    def __init__(self, publisher: Publisher, interval: float = 1.0) -> None:
        self.publisher = publisher
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publisher.send({"type": "llm.heartbeat"})
            except Exception:
                log.warning("heartbeat failed", exc_info=True)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _classify_runtime_error(exc: Exception, model: LLMModel) -> LLMError:
    text = str(exc)
    if "exceed context window" in text or ("context" in text.lower() and "exceed" in text.lower()):
        return ContextOverflow(
            f"the prompt does not fit {model.name}'s context of {model.context_length} tokens: {text}"
        )
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return OutOfMemory(f"out of memory on {model.name}: {text}")
    err = LLMError(f"{type(exc).__name__}: {text}")
    return err


def run_generation(payload: dict[str, Any]) -> None:
    """Execute one generation request end to end (the body of the Celery task)."""
    request_id: str = payload["request_id"]
    close_old_connections()
    ctx = CallContext(**payload["context"])
    publisher = Publisher(request_id, payload.get("stream_to"))
    enqueued_at: float = payload["enqueued_at"]
    queue_wait_ms = max(0.0, (time.time() - enqueued_at) * 1000)
    queueing.dequeued(payload["queue"], request_id)
    record = ledger.CallRecord(
        request_id=request_id,
        context=ctx,
        kind=payload["kind"],
        role=payload.get("role", ""),
        model_id=payload["model_id"],
        model_name=payload["model_name"],
        schema_name=payload.get("schema_name", ""),
        input_chars=payload.get("input_chars", 0),
        queue_wait_ms=queue_wait_ms,
        worker=worker_name(),
        routing=payload.get("routing", {}),
    )
    if queueing.is_cancelled(request_id):
        record.fail(Cancelled("cancelled before it started"))
        publisher.send({"type": "llm.error", "error_class": "cancelled", "message": "Cancelled."})
        return
    started = time.monotonic()
    publisher.send({"type": "llm.started", "worker": record.worker, "queue_wait_ms": round(queue_wait_ms, 1)})
    try:
        model = LLMModel.objects.get(pk=payload["model_id"])
        with Heartbeat(publisher):
            llm = load(model)
            if payload["kind"] == "embedding":
                result = _embed(llm, payload, record)
            else:
                result = _chat(llm, model, payload, publisher, record, started)
    except Cancelled as exc:
        record.fail(exc)
        publisher.flush()
        publisher.send({"type": "llm.error", "error_class": "cancelled", "message": "Cancelled."})
        return
    except LLMError as exc:
        record.fail(exc)
        publisher.send({"type": "llm.error", "error_class": exc.error_class, "message": str(exc)})
        return
    except LLMModel.DoesNotExist:
        err = LLMError(f"model {payload['model_name']} was deleted")
        record.fail(err)
        publisher.send({"type": "llm.error", "error_class": "model_unavailable", "message": str(err)})
        return
    except Exception as exc:
        err = _classify_runtime_error(exc, LLMModel(name=payload["model_name"], context_length=0))
        log.exception("generation %s failed", request_id)
        record.fail(err)
        publisher.send({"type": "llm.error", "error_class": err.error_class, "message": str(err)})
        return
    record.ok()
    publisher.send({"type": "llm.done", "result": result})
    if ctx.conversation:
        queueing.remember_worker(ctx.conversation, payload["queue"])


def _embed(llm: Llama, payload: dict[str, Any], record: ledger.CallRecord) -> dict[str, Any]:
    texts: list[str] = payload["texts"]
    started = time.monotonic()
    response = llm.create_embedding(texts)
    raw = np.asarray(
        [item["embedding"] for item in sorted(response["data"], key=lambda d: d["index"])], dtype=np.float32
    )
    # llama.cpp returns raw mean-pooled vectors; unit length makes dot product = cosine.
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    vectors = (raw / np.where(norms == 0, 1, norms)).tolist()
    record.prompt_tokens = int(response["usage"]["prompt_tokens"])
    record.total_ms = (time.monotonic() - started) * 1000
    record.finish_reason = "stop"
    return {"vectors": vectors, "usage": {"prompt_tokens": record.prompt_tokens}, "model": payload["model_name"]}


def _chat(
    llm: Llama,
    model: LLMModel,
    payload: dict[str, Any],
    publisher: Publisher,
    record: ledger.CallRecord,
    started: float,
) -> dict[str, Any]:
    sampling = {**(model.sampling or {}), **payload.get("sampling", {})}
    kwargs: dict[str, Any] = {
        "messages": payload["messages"],
        "max_tokens": payload["max_tokens"],
        "stream": True,
        "temperature": sampling.get("temperature", 0.2),
        "top_p": sampling.get("top_p", 0.95),
        "top_k": sampling.get("top_k", 40),
        "repeat_penalty": sampling.get("repeat_penalty", 1.1),
    }
    for key in ("stop", "seed", "min_p", "presence_penalty", "frequency_penalty"):
        if sampling.get(key) is not None:
            kwargs[key] = sampling[key]
    if payload.get("json_schema") is not None:
        kwargs["response_format"] = {"type": "json_object", "schema": payload["json_schema"]}
    elif payload.get("json_mode"):
        kwargs["response_format"] = {"type": "json_object"}
    before = list(llm._input_ids[: llm.n_tokens])
    parts: list[str] = []
    finish_reason = "stop"
    first_token_at: float | None = None
    request_id = payload["request_id"]
    chunks: Iterator[Any] = llm.create_chat_completion(**kwargs)  # type: ignore[assignment]
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            delta = choice.get("delta", {}).get("content")
            if delta:
                if first_token_at is None:
                    first_token_at = time.monotonic()
                parts.append(delta)
                if publisher.token(delta) and queueing.is_cancelled(request_id):
                    finish_reason = "cancelled"
                    break
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # frees the model at once when we broke out early
    publisher.flush()
    ended = time.monotonic()
    after = list(llm._input_ids[: llm.n_tokens])
    completion_tokens = publisher.count
    prompt_tokens = max(0, len(after) - completion_tokens)
    reused = _common_prefix(before, after[:prompt_tokens])
    record.prompt_tokens = prompt_tokens
    record.completion_tokens = completion_tokens
    record.ttft_ms = (first_token_at - started) * 1000 if first_token_at else None
    record.total_ms = (ended - started) * 1000
    gen_s = ended - (first_token_at or ended)
    record.tokens_per_s = completion_tokens / gen_s if gen_s > 0 and completion_tokens > 1 else None
    record.finish_reason = finish_reason
    record.cache_hit = reused >= 8
    record.metadata["prefix_reused_tokens"] = reused
    if finish_reason == "cancelled":
        raise Cancelled("cancelled by the client")
    return {
        "text": "".join(parts),
        "finish_reason": finish_reason,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        "timings": {
            "queue_wait_ms": record.queue_wait_ms,
            "ttft_ms": record.ttft_ms,
            "total_ms": record.total_ms,
            "tokens_per_s": record.tokens_per_s,
        },
        "cache_hit": record.cache_hit,
        "worker": record.worker,
        "model": payload["model_name"],
    }
