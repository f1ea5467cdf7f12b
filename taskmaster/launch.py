"""`make run`: prepare everything, then run web, workers and beat under honcho.

This process holds the embedded PostgreSQL/Redis (when DATABASE_URL/REDIS_URL are
unset) for as long as honcho runs, and stops them when it exits, Ctrl-C included.
Problems an operator must fix are printed as one line, without a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def _fail(message: str) -> None:
    sys.exit(f"error: {message}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmaster.settings")
    os.environ.setdefault("DEBUG", "1")
    host = os.environ.get("HOST", "127.0.0.1")
    try:
        port = int(os.environ.get("PORT", "8000"))
    except ValueError:
        _fail(f"PORT={os.environ['PORT']!r} is not a number")
    if not _port_free(host, port):
        _fail(f"port {port} on {host} is already in use; stop what uses it or set PORT=...")

    from taskmaster.env import ConfigError

    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.db.utils import OperationalError

        try:
            connection.ensure_connection()
        except OperationalError as exc:
            _fail(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}")
        from taskmaster.health import check_redis

        problem = check_redis()
        if problem:
            _fail(f"cannot connect to Redis at {settings.REDIS_URL}: {problem}")
        call_command("migrate", verbosity=0, interactive=False)
        call_command("setup_models")
        call_command("collectstatic", verbosity=0, interactive=False)
        connection.close()
    except ConfigError as exc:
        _fail(str(exc))

    from taskmaster import embedded

    env = dict(os.environ)
    env.update(embedded.child_env(Path(settings.DATA_DIR)))
    env["HOST"], env["PORT"] = host, str(port)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    print(f"\n  Task Master Local is starting on http://{host}:{port}/  (Ctrl-C stops everything)\n", flush=True)
    procfile = Path(settings.BASE_DIR) / "Procfile"
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", str(procfile), "start"], env=env, cwd=procfile.parent
    )
    # Ctrl-C reaches the whole process group; honcho stops its children, we wait for
    # it and then let atexit stop the embedded servers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    code = proc.wait()
    sys.exit(0 if code in (0, -signal.SIGINT, 130) else code)


if __name__ == "__main__":
    main()
