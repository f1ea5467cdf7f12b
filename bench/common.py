"""Shared bench plumbing: Django set-up, worker processes, and median/ratio tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmaster.settings")
    import django

    django.setup()


def machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    cores = len(os.sched_getaffinity(0))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {cores} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class Table:
    """Rows of (metric, a, b, ratio b/a, target) printed as Markdown."""

    def __init__(self, title: str, a: str, b: str) -> None:
        self.title, self.a, self.b = title, a, b
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, metric: str, a: float, b: float, *, fmt: str = "{:.1f}", target: str = "") -> None:
        ratio = b / a if a else float("nan")
        self.rows.append((metric, fmt.format(a), fmt.format(b), f"{ratio:.2f}", target))

    def note(self, metric: str, value: str, target: str = "") -> None:
        self.rows.append((metric, value, "", "", target))

    def render(self) -> str:
        head = f"\n### {self.title}\n\n| metric | {self.a} | {self.b} | ratio | target |\n|---|---|---|---|---|\n"
        return head + "\n".join(f"| {' | '.join(row)} |" for row in self.rows) + "\n"


@contextmanager
def inference_worker(queues: str, name: str = "bench") -> Iterator[subprocess.Popen[bytes]]:
    """A real inference worker process on ``queues``, as `make run` starts it."""
    from django.conf import settings

    from taskmaster import embedded
    from taskmaster.celery import app

    env = dict(os.environ)
    env.update(embedded.child_env(Path(settings.DATA_DIR)))
    log = open(Path(settings.DATA_DIR) / f"bench-{name}.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "inference_worker", "--queues", queues, "--name", name, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            if any(name in node for reply in replies for node in reply):
                break
        else:
            raise RuntimeError(f"inference worker did not start; see {log.name}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
