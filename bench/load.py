"""Load (issue 10): N virtual users browsing the pages while M clients stream from the default model.

Everything runs on loopback against processes this section starts itself: daphne on a free
port, an inference worker on the default models' queues and a jobs worker. Users log in through
the real login form, then browse the dashboard, research, planning and analytics pages with a
short think time; streams use the OpenAI-compatible SSE endpoint with an API token. The section
is bounded in time (BROWSE_S plus start-up) and stops every process it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, Table, inference_worker, median, p95

USERS = int(os.environ.get("BENCH_LOAD_USERS", "50"))
STREAMS = int(os.environ.get("BENCH_LOAD_STREAMS", "8"))
BROWSE_S = float(os.environ.get("BENCH_LOAD_SECONDS", "40"))
THINK_S = (1.0, 3.0)  # a person reads a page before the next click
STREAM_MAX_TOKENS = 64
STREAM_TIMEOUT_S = 120.0
PAGES = ["/", "/research/", "/planning/", "/analytics/"]
PASSWORD = "load-bench-pw-123"
PREFIX = "loadbench"
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Results:
    page_ms: list[float] = field(default_factory=list)
    login_ms: list[float] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    stream_ok: int = 0
    stream_failed: list[str] = field(default_factory=list)
    stream_ttft_ms: list[float] = field(default_factory=list)
    stream_total_ms: list[float] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed() -> tuple[list[str], str]:
    """Load users in one team (editors), and an API token without rate limits for the streams."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from taskmaster.api.services import api_token_create, user_api_limit_set
    from taskmaster.models import Membership, Role, Team

    User = get_user_model()
    _cleanup()
    team = Team.objects.create(name="Load bench", slug=f"{PREFIX}-team")
    hashed = make_password(PASSWORD)  # once: the users differ in name only
    names = [f"{PREFIX}-{i:03d}" for i in range(USERS)]
    users = User.objects.bulk_create([User(username=n, password=hashed) for n in names])
    Membership.objects.bulk_create([Membership(user=u, team=team, role=Role.EDITOR) for u in users])
    streamer = users[0]
    user_api_limit_set(user=streamer, requests_per_minute=0, daily_token_quota=0)
    _token, secret = api_token_create(user=streamer, name="bench load")
    return names, secret


def _cleanup() -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.models import Team

    get_user_model().objects.filter(username__startswith=f"{PREFIX}-").delete()
    Team.objects.filter(slug=f"{PREFIX}-team").delete()


@contextmanager
def _process(cmd: list[str], name: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    from django.conf import settings

    log = open(Path(settings.DATA_DIR) / f"bench-load-{name}.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _env() -> dict[str, str]:
    from django.conf import settings

    from taskmaster import embedded

    env = dict(os.environ)
    env.update(embedded.child_env(Path(settings.DATA_DIR)))
    env.update({"DJANGO_SETTINGS_MODULE": "taskmaster.settings", "PYTHONUNBUFFERED": "1", "DEBUG": "0"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {proc.returncode}; see bench-load-web.log")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("daphne did not start within 60 s")


def _wait_jobs_worker(timeout: float = 60) -> None:
    from taskmaster.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(node.startswith("loadjobs@") for reply in replies for node in reply):
            return
    raise RuntimeError("jobs worker did not start; see bench-load-jobs.log")


async def _login(client: httpx.AsyncClient, name: str, results: Results) -> bool:
    started = time.perf_counter()
    try:
        form = await client.get("/login/")
        token = _CSRF.search(form.text)
        if form.status_code != 200 or token is None:
            results.page_errors.append(f"login form: {form.status_code}")
            return False
        done = await client.post(
            "/login/",
            data={"username": name, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{client.base_url}login/"},
        )
    except httpx.HTTPError as exc:
        results.page_errors.append(f"login: {type(exc).__name__}")
        return False
    results.login_ms.append((time.perf_counter() - started) * 1000)
    if done.status_code != 302:
        results.page_errors.append(f"login: {done.status_code}")
        return False
    return True


async def _browse(client: httpx.AsyncClient, until: float, results: Results) -> None:
    # Spread the first clicks so the users do not all arrive in the same millisecond.
    await asyncio.sleep(random.uniform(0, THINK_S[1]))
    while time.monotonic() < until:
        path = random.choice(PAGES)
        started = time.perf_counter()
        try:
            response = await client.get(path)
        except httpx.HTTPError as exc:
            results.page_errors.append(f"{path}: {type(exc).__name__}")
        else:
            results.page_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                results.page_errors.append(f"{path}: {response.status_code}")
        await asyncio.sleep(random.uniform(*THINK_S))


async def _stream(base: str, secret: str, model: str, i: int, results: Results) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Give one tip for planning a project (variant {i})."}],
        "max_tokens": STREAM_MAX_TOKENS,
        "stream": True,
    }
    started = time.perf_counter()
    first: float | None = None
    finished = False
    try:
        async with (
            httpx.AsyncClient(base_url=base, timeout=STREAM_TIMEOUT_S) as client,
            client.stream(
                "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
            ) as r,
        ):
            if r.status_code != 200:
                results.stream_failed.append(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                chunk: dict[str, Any] = json.loads(data)
                if "error" in chunk:
                    results.stream_failed.append(f"error event: {chunk['error']}")
                    return
                for choice in chunk.get("choices", []):
                    if choice.get("delta", {}).get("content") and first is None:
                        first = time.perf_counter()
                    finished = finished or bool(choice.get("finish_reason"))
    except (httpx.HTTPError, ValueError) as exc:
        results.stream_failed.append(f"{type(exc).__name__}: {exc}")
        return
    if not finished:
        results.stream_failed.append("stream ended without a finish_reason")
        return
    results.stream_ok += 1
    results.stream_total_ms.append((time.perf_counter() - started) * 1000)
    if first is not None:
        results.stream_ttft_ms.append((first - started) * 1000)


async def _load(base: str, names: list[str], secret: str, model: str) -> tuple[Results, float]:
    results = Results()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False))
            for _ in names
        ]
        # Phase 1: everyone logs in at once (password hashing; reported on its own line).
        logged_in = await asyncio.gather(*(_login(c, n, results) for c, n in zip(clients, names, strict=True)))
        # Phase 2: browsing for BROWSE_S, with the streams starting a few seconds in so both loads overlap.
        started = time.monotonic()
        until = started + BROWSE_S
        ready = [c for c, ok in zip(clients, logged_in, strict=True) if ok]
        users = [asyncio.create_task(_browse(c, until, results)) for c in ready]
        await asyncio.sleep(min(5.0, BROWSE_S / 4))
        streams = [asyncio.create_task(_stream(base, secret, model, i, results)) for i in range(STREAMS)]
        await asyncio.wait_for(asyncio.gather(*users, *streams), timeout=BROWSE_S + STREAM_TIMEOUT_S + 30)
    return results, time.monotonic() - started


def run() -> str:
    from taskmaster.llm.registry import model_for_role

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    chat = model_for_role("main")
    emb = model_for_role("embedding")
    names, secret = _seed()
    port = _free_port()
    env = _env()
    web_cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "taskmaster.asgi:application"]
    jobs_cmd = [sys.executable, "-m", "celery", "-A", "taskmaster", "worker", "-Q", "jobs", "-c", "1"]
    jobs_cmd += ["-n", "loadjobs@%h", "-l", "WARNING", "--without-mingle", "--without-gossip"]
    try:
        with (
            inference_worker(f"{chat.queue_name},{emb.queue_name}", name="loadinference"),
            _process(jobs_cmd, "jobs", env),
            _process(web_cmd, "web", env) as web,
        ):
            _wait_port(port, web)
            _wait_jobs_worker()
            base = f"http://127.0.0.1:{port}"
            # Warm-up: load the model in the worker and the page code in daphne (not measured).
            warm = Results()
            asyncio.run(_stream(base, secret, chat.name, -1, warm))
            if warm.stream_failed:
                raise RuntimeError(f"the warm-up stream failed: {warm.stream_failed[0]}")
            results, elapsed = asyncio.run(_load(base, names, secret, chat.name))
    finally:
        _cleanup()

    table = Table(
        f"Load: {USERS} users browsing ({', '.join(PAGES)}; think time {THINK_S[0]:.0f}-{THINK_S[1]:.0f} s) "
        f"for {BROWSE_S:.0f} s plus {STREAMS} concurrent streams (max_tokens {STREAM_MAX_TOKENS}), "
        "one daphne, one inference worker",
        "value",
        "",
    )
    table.note("page requests (browsing phase)", f"{len(results.page_ms)} in {elapsed:.0f} s")
    table.note("page latency p50, ms", f"{median(results.page_ms):.0f}")
    table.note("page latency p95, ms", f"{p95(results.page_ms):.0f}", "≤ 300")
    errors = f"{len(results.page_errors)}" + (f" ({results.page_errors[:3]})" if results.page_errors else "")
    table.note("page errors", errors, "0")
    table.note("login p95, ms (password hashing)", f"{p95(results.login_ms):.0f}")
    table.note("streams completed / failed", f"{results.stream_ok} / {len(results.stream_failed)}", f"{STREAMS} / 0")
    if results.stream_failed:
        table.note("stream failures", "; ".join(results.stream_failed[:3]))
    table.note("stream time to first token p95, ms", f"{p95(results.stream_ttft_ms):.0f}")
    table.note("stream total p95, ms", f"{p95(results.stream_total_ms):.0f}")
    return table.render()
