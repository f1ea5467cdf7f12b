"""manage.py backup / restore: a round trip into a fresh embedded database, and refusals that touch nothing."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from taskmaster import embedded
from taskmaster.api.services import api_token_create
from taskmaster.llm.defaults import CHAT_NAME, EMBED_NAME, register_defaults
from taskmaster.models import LLMCall, LLMModel, Membership, Team
from tests.conftest import Trio

ROOT = Path(__file__).resolve().parents[2]
MEDIA_FILE = "research/2026/01/spec.md"
MEDIA_BYTES = "# Spec\n\nUploaded source — with UTF-8 ✓\n".encode()


@pytest.fixture
def media_root(tmp_path: Path, settings: Any) -> Path:
    root = tmp_path / "media"
    (root / MEDIA_FILE).parent.mkdir(parents=True)
    (root / MEDIA_FILE).write_bytes(MEDIA_BYTES)
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def seeded(transactional_db: None, trio: Trio, media_root: Path) -> dict[str, Any]:
    """Teams, users, memberships, the default models, a ledger row and an API token: all committed."""
    register_defaults(verify=False)
    call = LLMCall.objects.create(
        feature="research.answer",
        model_name=CHAT_NAME,
        model=LLMModel.objects.get(name=CHAT_NAME),
        team=trio.team,
        user=trio.owner,
        prompt_tokens=12,
        completion_tokens=7,
        worker="host-a:4242",
    )
    token, _secret = api_token_create(user=trio.member, name="ci")
    return {"call_id": str(call.pk), "token_hash": token.token_hash, "owner_hash": trio.owner.password}


def _backup(tmp_path: Path) -> Path:
    out = io.StringIO()
    call_command("backup", output=str(tmp_path / "backups"), stdout=out, stderr=io.StringIO())
    archive = Path(out.getvalue().strip())
    assert archive.is_file() and archive.name.endswith(".tar.gz")
    assert archive.stat().st_mode & 0o077 == 0, "the archive holds password hashes: owner-only"
    return archive


@pytest.fixture
def fresh_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A second, empty embedded PostgreSQL in its own DATA_DIR, held by this test process."""
    data = tmp_path / "fresh"
    embedded.ensure(data, "postgres")
    try:
        yield data
    finally:
        embedded.release(data, "postgres")


def _manage_in(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """manage.py against the fresh DATA_DIR: no DATABASE_URL, so it uses that embedded server."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TASKMASTER_EMBEDDED_CHILD", "MEDIA_ROOT"}}
    env.update(
        {
            "DATA_DIR": str(data),
            "MODELS_DIR": str(settings.MODELS_DIR),
            "REDIS_URL": settings.REDIS_URL,  # no need for a second Redis
            "DJANGO_SETTINGS_MODULE": "taskmaster.settings",
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def _query(data: Path, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(embedded.postgres_url(data)) as conn:
        return conn.execute(sql).fetchall()


def test_backup_restores_into_a_fresh_embedded_database(seeded: dict[str, Any], tmp_path: Path, fresh_data_dir: Path):
    archive = _backup(tmp_path)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["db.dump", "manifest.json", "media.tar", "models.json"]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        registry = json.loads(tar.extractfile("models.json").read())  # type: ignore[union-attr]
    assert manifest["format"] == "taskmaster-backup" and manifest["created_at"]
    assert {"taskmaster", "django", "postgres_server", "pg_dump"} <= set(manifest["versions"])
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert {m["name"] for m in registry["models"]} == {CHAT_NAME, EMBED_NAME}
    chat = next(m for m in registry["models"] if m["name"] == CHAT_NAME)
    assert chat["sha256"] and chat["queue"] == f"llm.{CHAT_NAME}" and chat["settings"]["context_length"] == 4096
    assert registry["role_defaults"]["main"] == CHAT_NAME

    result = _manage_in(fresh_data_dir, "restore", str(archive))
    assert result.returncode == 0, result.stderr
    assert "Restored database taskmaster" in result.stdout and "1 uploaded files" in result.stdout

    # Everything is there, in the fresh server's database.
    assert _query(fresh_data_dir, "SELECT name, slug FROM taskmaster_team ORDER BY slug") == [
        ("Alpha", "alpha"),
        ("Beta", "beta"),
    ]
    users = dict(_query(fresh_data_dir, "SELECT username, password FROM auth_user"))
    assert set(users) == {"owner", "member", "outsider"} and users["owner"] == seeded["owner_hash"]
    roles = _query(
        fresh_data_dir,
        "SELECT u.username, t.slug, m.role FROM taskmaster_membership m JOIN auth_user u ON u.id = m.user_id "
        "JOIN taskmaster_team t ON t.id = m.team_id ORDER BY u.username",
    )
    assert roles == [("member", "alpha", "editor"), ("outsider", "beta", "owner"), ("owner", "alpha", "owner")]
    models = _query(fresh_data_dir, "SELECT name, sha256, file_path FROM taskmaster_llmmodel ORDER BY name")
    assert models == [(m.name, m.sha256, m.file_path) for m in LLMModel.objects.order_by("name")]
    ledger = _query(fresh_data_dir, "SELECT id::text, feature, worker, completion_tokens FROM taskmaster_llmcall")
    assert ledger == [(seeded["call_id"], "research.answer", "host-a:4242", 7)]
    assert _query(fresh_data_dir, "SELECT token_hash FROM taskmaster_apitoken") == [(seeded["token_hash"],)]
    # pgvector came along: the extension and vector columns work in the restored database.
    assert _query(fresh_data_dir, "SELECT '[1,2]'::vector <-> '[1,2]'::vector") == [(0.0,)]
    assert (fresh_data_dir / "media" / MEDIA_FILE).read_bytes() == MEDIA_BYTES

    # A second restore without --force refuses the now non-empty database and changes nothing.
    with psycopg.connect(embedded.postgres_url(fresh_data_dir)) as conn:
        conn.execute("INSERT INTO taskmaster_team (name, slug, created_at) VALUES ('Gamma', 'gamma', now())")
    again = _manage_in(fresh_data_dir, "restore", str(archive))
    assert again.returncode != 0
    assert "not empty" in again.stderr and "--force" in again.stderr
    assert ("gamma",) in _query(fresh_data_dir, "SELECT slug FROM taskmaster_team")

    # --force replaces the contents with exactly the backup; the old uploads are moved aside.
    forced = _manage_in(fresh_data_dir, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert _query(fresh_data_dir, "SELECT slug FROM taskmaster_team ORDER BY slug") == [("alpha",), ("beta",)]
    assert "moved to" in forced.stdout
    assert (fresh_data_dir / "media" / MEDIA_FILE).read_bytes() == MEDIA_BYTES


def _snapshot(media_root: Path) -> tuple[Any, ...]:
    files = sorted((str(p.relative_to(media_root)), p.read_bytes()) for p in media_root.rglob("*") if p.is_file())
    return (
        sorted(Team.objects.values_list("slug", flat=True)),
        Membership.objects.count(),
        LLMModel.objects.count(),
        LLMCall.objects.count(),
        files,
    )


def _repack(archive: Path, dest: Path, *, change: dict[str, bytes | None]) -> Path:
    """Copy of ``archive`` with members replaced (bytes) or dropped (None); the manifest is kept as it was."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:gz") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]  # type: ignore[assignment]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def test_corrupt_or_foreign_archives_are_refused_and_nothing_changes(
    seeded: dict[str, Any], tmp_path: Path, media_root: Path
):
    archive = _backup(tmp_path)
    with tarfile.open(archive) as tar:
        dump = tar.extractfile("db.dump").read()  # type: ignore[union-attr]
    flipped = bytearray(dump)
    flipped[len(flipped) // 2] ^= 0xFF
    raw = archive.read_bytes()
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    cases = {
        "flipped byte in the dump": (
            _repack(archive, tmp_path / "flipped.tar.gz", change={"db.dump": bytes(flipped)}),
            "is corrupt: db.dump has sha256",
        ),
        "member missing": (_repack(archive, tmp_path / "short.tar.gz", change={"media.tar": None}), "media.tar"),
        "truncated download": (_write(tmp_path / "cut.tar.gz", raw[: len(raw) // 2]), "not a readable tar.gz"),
        "not gzip at all": (_write(tmp_path / "junk.tar.gz", b"PK\x03\x04 not a backup" * 20), "not a readable"),
        "someone else's tar.gz": (foreign, "not a Task Master backup"),
        "gzip of something else": (_write(tmp_path / "text.gz", gzip.compress(b"hello")), "not a readable tar.gz"),
        "bad manifest": (
            _repack(archive, tmp_path / "manifest.tar.gz", change={"manifest.json": b'{"format": "other"}'}),
            "not a Task Master backup",
        ),
        "no such file": (tmp_path / "missing.tar.gz", "does not exist"),
    }
    before = _snapshot(media_root)
    for label, (path, expected) in cases.items():
        with pytest.raises(CommandError) as exc:
            call_command("restore", str(path), force=True, stdout=io.StringIO())
        assert expected in str(exc.value), f"{label}: {exc.value}"
        assert _snapshot(media_root) == before, f"{label} changed something"
    assert list(media_root.parent.glob(".media.restore-*")) == [], "no staged media left behind"

    # A good archive without --force is refused by the non-empty test database, also untouched.
    with pytest.raises(CommandError, match=r"not empty .*--force"):
        call_command("restore", str(archive), stdout=io.StringIO())
    assert _snapshot(media_root) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
