"""API comparison (issue 6): the app's /v1 against llama-cpp-python's own OpenAI server.

Both servers serve the same GGUF with the same threads, context and batch size, and get
the same streaming requests (greedy sampling, a different prompt per run so neither reuses
a cached prompt). They are measured alternately, never at the same time:

* one client: time to first content token and decode tokens/s, median of RUNS;
* CONCURRENT streaming clients at once: aggregate tokens/s, p95 time to first token, and
  streams that were cut off or failed. llama_cpp.server interrupts a running request when
  a new one arrives (`interrupt_requests`, on by default); it runs with its defaults here.

Completion tokens are counted with the peer's /extras/tokenize on the streamed text, the
same way for both sides (the app batches several tokens per SSE chunk).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import Table, inference_worker, median, p95
from bench.load import _env, _free_port, _process, _wait_port

RUNS = int(os.environ.get("BENCH_API_RUNS", "5"))
CONCURRENT = 4
MAX_TOKENS = int(os.environ.get("BENCH_API_MAX_TOKENS", "96"))
TIMEOUT_S = 300.0
PREFIX = "apibench"
SAMPLING: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "seed": 7}


@dataclass
class Stream:
    ok: bool
    reason: str = ""
    text: str = ""
    tokens: int = 0
    start: float = 0.0
    first: float | None = None
    last: float | None = None
    end: float = 0.0

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first is None else (self.first - self.start) * 1000

    @property
    def decode_tps(self) -> float | None:
        if self.first is None or self.last is None or self.tokens < 2 or self.last <= self.first:
            return None
        return (self.tokens - 1) / (self.last - self.first)


def _prompt(tag: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story ({tag}) about a lighthouse keeper and a whale."}]


async def _stream(base: str, key: str, model: str, tag: str) -> Stream:
    body = {"model": model, "messages": _prompt(tag), "max_tokens": MAX_TOKENS, "stream": True, **SAMPLING}
    result = Stream(ok=False, start=time.perf_counter())
    finished = done = False
    parts: list[str] = []
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S) as client,
            client.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}) as r,
        ):
            if r.status_code != 200:
                result.reason = f"HTTP {r.status_code}"
                return result
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line[6:].strip() == "[DONE]":
                    done = True
                    break
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    result.reason = f"error event: {str(chunk['error'])[:120]}"
                    return result
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        now = time.perf_counter()
                        result.first = result.first or now
                        result.last = now
                        parts.append(content)
                    finished = finished or bool(choice.get("finish_reason"))
    except (httpx.HTTPError, ValueError) as exc:
        result.reason = f"{type(exc).__name__}: {str(exc)[:120]}"
        return result
    finally:
        result.end = time.perf_counter()
        result.text = "".join(parts)
    result.ok = finished and done
    result.reason = "" if result.ok else "cut off (no finish_reason or no [DONE])"
    return result


async def _count_tokens(peer: str, streams: list[Stream]) -> None:
    async with httpx.AsyncClient(base_url=peer, timeout=60) as client:
        for s in streams:
            if s.text:
                r = await client.post("/extras/tokenize", json={"input": s.text})
                s.tokens = len(r.json()["tokens"])


async def _concurrent(base: str, key: str, model: str, tag: str) -> tuple[list[Stream], float]:
    started = time.perf_counter()
    streams = await asyncio.gather(*(_stream(base, key, model, f"{tag}-{i}") for i in range(CONCURRENT)))
    return list(streams), time.perf_counter() - started


def _seed() -> str:
    from django.contrib.auth import get_user_model

    from taskmaster.api.services import api_token_create, user_api_limit_set
    from taskmaster.models import Membership, Role, Team

    _cleanup()
    user = get_user_model().objects.create_user(f"{PREFIX}-user", password=None)
    team = Team.objects.create(name="API bench", slug=f"{PREFIX}-team")
    Membership.objects.create(user=user, team=team, role=Role.OWNER)
    user_api_limit_set(user=user, requests_per_minute=0, daily_token_quota=0)
    return api_token_create(user=user, name="bench api")[1]


def _cleanup() -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.models import Team

    get_user_model().objects.filter(username=f"{PREFIX}-user").delete()
    Team.objects.filter(slug=f"{PREFIX}-team").delete()


def _wait_http(url: str, proc: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; see bench-load-*.log in DATA_DIR")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def run() -> str:
    from taskmaster.llm.registry import model_for_role
    from taskmaster.llm.worker import cpu_count

    logging.getLogger("httpx").setLevel(logging.WARNING)
    chat = model_for_role("main")
    emb = model_for_role("embedding")
    threads = chat.n_threads or cpu_count()
    secret = _seed()
    env = _env()
    app_port, peer_port = _free_port(), _free_port()
    web_cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(app_port), "taskmaster.asgi:application"]
    peer_cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(chat.path), "--model_alias", chat.name]
    peer_cmd += ["--host", "127.0.0.1", "--port", str(peer_port), "--n_ctx", str(chat.context_length)]
    peer_cmd += ["--n_threads", str(threads), "--n_batch", str(chat.n_batch), "--verbose", "False"]
    if chat.chat_format:
        peer_cmd += ["--chat_format", chat.chat_format]
    app, peer = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{peer_port}"
    try:
        with (
            inference_worker(f"{chat.queue_name},{emb.queue_name}", name="apiinference"),
            _process(web_cmd, "api-web", env) as web,
            _process(peer_cmd, "api-peer", env) as peer_proc,
        ):
            _wait_port(app_port, web)
            _wait_http(f"{peer}/v1/models", peer_proc)
            # Warm-up on both sides (model load, code paths); not measured.
            for base, key in ((peer, "none"), (app, secret)):
                warm = asyncio.run(_stream(base, key, chat.name, "warm-up"))
                if not warm.ok:
                    raise RuntimeError(f"warm-up stream against {base} failed: {warm.reason}")
            single: dict[str, list[Stream]] = {"peer": [], "app": []}
            for i in range(RUNS):
                single["peer"].append(asyncio.run(_stream(peer, "none", chat.name, f"single {i}")))
                single["app"].append(asyncio.run(_stream(app, secret, chat.name, f"single {i}")))
            peer_conc, peer_wall = asyncio.run(_concurrent(peer, "none", chat.name, "concurrent"))
            app_conc, app_wall = asyncio.run(_concurrent(app, secret, chat.name, "concurrent"))
            for streams in (single["peer"], single["app"], peer_conc, app_conc):
                asyncio.run(_count_tokens(peer, streams))
    finally:
        _cleanup()

    def values(streams: list[Stream], attr: str) -> list[float]:
        return [v for s in streams if s.ok and (v := getattr(s, attr)) is not None]

    table = Table(
        f"API: llama_cpp.server (a) vs the app's /v1 (b), same GGUF, {threads} threads, "
        f"streamed, max_tokens {MAX_TOKENS}; one client {RUNS} runs (medians), then {CONCURRENT} concurrent streams",
        "llama_cpp.server (a)",
        "app /v1 (b)",
    )
    table.add(
        "one client: tokens/s (decode)",
        median(values(single["peer"], "decode_tps")),
        median(values(single["app"], "decode_tps")),
        target="b/a ≥ 0.9",
    )
    table.add(
        "one client: time to first token, ms",
        median(values(single["peer"], "ttft_ms")),
        median(values(single["app"], "ttft_ms")),
        fmt="{:.0f}",
    )
    table.note(
        "one client: streams ok (a / b)",
        f"{sum(s.ok for s in single['peer'])}/{RUNS} / {sum(s.ok for s in single['app'])}/{RUNS}",
    )
    table.add(
        f"{CONCURRENT} streams: aggregate tokens/s",
        sum(s.tokens for s in peer_conc) / peer_wall,
        sum(s.tokens for s in app_conc) / app_wall,
    )
    table.add(
        f"{CONCURRENT} streams: time to first token p95, ms",
        p95(values(peer_conc, "ttft_ms")),
        p95(values(app_conc, "ttft_ms")),
        fmt="{:.0f}",
    )
    cut = [sum(not s.ok for s in streams) for streams in (peer_conc, app_conc)]
    table.note(f"{CONCURRENT} streams: cut off or failed (a / b)", f"{cut[0]} / {cut[1]}", "b: 0")
    reasons = sorted({s.reason for s in [*peer_conc, *app_conc] if not s.ok})
    if reasons:
        table.note("failure reasons", "; ".join(reasons[:3]))
    table.note(
        f"{CONCURRENT} streams: tokens received (a / b)",
        f"{sum(s.tokens for s in peer_conc)} / {sum(s.tokens for s in app_conc)}",
    )
    return table.render()
