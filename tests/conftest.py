"""Shared fixtures: the three users, real Celery workers, a live daphne server, Chromium.

Nothing of ours is mocked. Workers and daphne run as subprocesses against the test
database, so tests that involve them use ``transactional_db`` (their writes must be
committed to be seen across processes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from taskmaster.models import Membership, Role, Team

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
User = get_user_model()


# --- the three users -----------------------------------------------------------


@dataclass
class Trio:
    team: Team
    owner: Any
    member: Any
    outsider: Any
    other_team: Team


@pytest.fixture
def trio(db: None) -> Trio:
    """owner and member (editor) of ``team``; outsider owns a different team."""
    owner = User.objects.create_user("owner", "owner@example.com", "pw-owner-123")
    member = User.objects.create_user("member", "member@example.com", "pw-member-123")
    outsider = User.objects.create_user("outsider", "outsider@example.com", "pw-outsider-123")
    team = Team.objects.create(name="Alpha", slug="alpha")
    other = Team.objects.create(name="Beta", slug="beta")
    Membership.objects.create(user=owner, team=team, role=Role.OWNER)
    Membership.objects.create(user=member, team=team, role=Role.EDITOR)
    Membership.objects.create(user=outsider, team=other, role=Role.OWNER)
    return Trio(team=team, owner=owner, member=member, outsider=outsider, other_team=other)


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Before the test database is dropped, end sessions that async tests left open.

    Async tests reach the ORM through asgiref's executor thread, whose connection outlives
    the test; without this the final DROP DATABASE fails and the next run starts with a
    stale test database.
    """
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# --- subprocess environment --------------------------------------------------------


def _test_database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "postgres")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    host = s.get("HOST") or ""
    if host.startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={host}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgresql://{auth}@{host}{port}/{s['NAME']}"


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "TASKMASTER_EMBEDDED_CHILD": "1",
            "DJANGO_SETTINGS_MODULE": "taskmaster.settings",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


def _wait_for_workers(names: list[str], timeout: float = 60) -> None:
    from taskmaster.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        seen = {name.split("@")[0] for reply in replies for name in reply}
        if all(n in seen for n in names):
            return
    raise RuntimeError(f"Celery workers {names} did not come up within {timeout:.0f} s")


class Workers:
    """The real worker processes the suite runs against; tests may kill and restart them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        env = subprocess_env()
        if name == "inference":
            from taskmaster.llm.defaults import CHAT_NAME, EMBED_NAME

            cmd = [
                sys.executable,
                "manage.py",
                "inference_worker",
                "--queues",
                f"llm.{CHAT_NAME},llm.{EMBED_NAME}",
                "--loglevel",
                "WARNING",
            ]
        else:
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "taskmaster",
                "worker",
                "-Q",
                "jobs",
                "-c",
                "2",
                "-n",
                "jobs@%h",
                "-l",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
            ]
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_workers([name])

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def child_pids(self, name: str) -> list[int]:
        """Pool child processes of a worker: where the model actually runs."""
        import psutil

        return [c.pid for c in psutil.Process(self.procs[name].pid).children(recursive=True)]

    def ensure(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            self.procs.pop(name, None)
            self.start(name)


@pytest.fixture(scope="session")
def workers(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    with django_db_blocker.unblock():
        w = Workers(tmp_path_factory.mktemp("workers"))
        try:
            w.start("inference")
            w.start("jobs")
            yield w
        finally:
            for name in list(w.procs):
                w.stop(name)


@pytest.fixture
def llm(transactional_db: None, workers: Workers) -> Workers:
    """Default models registered in the test DB and workers up: real inference available."""
    from taskmaster.llm.defaults import register_defaults

    register_defaults(verify=False)
    workers.ensure("inference")
    workers.ensure("jobs")
    return workers


# --- live server and browser ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_daphne(log_dir: Path, **env: str) -> Iterator[str]:
    """daphne on a free port with the test environment (plus ``env``); yields its base URL."""
    port = _free_port()
    with open(log_dir / "daphne.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "taskmaster.asgi:application"],
            cwd=ROOT,
            env={**subprocess_env(), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError("daphne did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def live_url(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """daphne serving HTTP and WebSocket on the test database."""
    from django.core.management import call_command

    call_command("collectstatic", verbosity=0, interactive=False)
    with serve_daphne(tmp_path_factory.mktemp("daphne")) as url:
        yield url


def _browser_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not _browser_available():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing and REQUIRE_BROWSER is set: install Debian's chromium")
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests last: they need the slowest fixtures, and failures elsewhere show sooner.
    items.sort(key=lambda item: "browser" in item.keywords)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")
