"""The embedded PostgreSQL and Redis start, are shared by holders, and stop with the last one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from taskmaster import embedded

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": "/root"},
    )


def test_start_use_and_stop_in_a_fresh_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "var"
    result = _run(f"""
        from pathlib import Path
        import psycopg, redis
        from taskmaster import embedded
        data = Path({str(data)!r})
        embedded.ensure(data, "postgres"); embedded.ensure(data, "redis")
        with psycopg.connect(embedded.postgres_url(data)) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            print("pg", conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,3]'::vector").fetchone()[0])
        print("redis", redis.Redis(unix_socket_path=str(embedded.redis_socket(data))).ping())
        print("running", embedded.running(data))
    """)
    assert result.returncode == 0, result.stderr
    assert "pg 0.0" in result.stdout
    assert "redis True" in result.stdout
    assert "'postgres': True, 'redis': True" in result.stdout
    # The process was the only holder: both servers stopped when it exited.
    assert embedded.running(data) == {"postgres": False, "redis": False}


def test_a_second_holder_keeps_servers_up(tmp_path: Path) -> None:
    data = tmp_path / "var"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from taskmaster import embedded
            embedded.ensure(Path({str(data)!r}), "redis")
            print("up", flush=True)
            sys.stdin.readline()
        """),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        # A short-lived user of the same servers does not stop them for the holder.
        assert (
            _run(f"""
            from pathlib import Path
            from taskmaster import embedded
            embedded.ensure(Path({str(data)!r}), "redis")
        """).returncode
            == 0
        )
        assert embedded.running(data)["redis"] is True
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert embedded.running(data)["redis"] is False


def test_unwritable_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    result = _run("""
        import os
        os.environ["DATA_DIR"] = "/proc/taskmaster-cannot-write"
        os.environ["DJANGO_SETTINGS_MODULE"] = "taskmaster.settings"
        import sys
        sys.argv = ["manage.py", "check"]
        import runpy
        runpy.run_path("manage.py", run_name="__main__")
    """)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "/proc/taskmaster-cannot-write" in lines[0] and "DATA_DIR" in lines[0]


def test_wrong_database_url_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskmaster.launch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/root",
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
            "PORT": "18765",
        },
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot connect to the database")
