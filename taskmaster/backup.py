"""Backups: one tar.gz holding the database (pg_dump -Fc), the model registry manifest and MEDIA_ROOT.

Archive layout (every member listed with its sha256 in manifest.json)::

    manifest.json   format, created_at, versions, database, files{name: {sha256, size}}
    db.dump         pg_dump custom format of the whole database
    models.json     the registry rows (name, kind, file_path, sha256, size, settings); the GGUF
                    files themselves are not included: they are large and re-obtainable
    media.tar       uploaded sources (MEDIA_ROOT)

Restore verifies every checksum before it touches anything, refuses a database (or media
folder) that already holds data unless ``force`` is given, and applies the dump in a single
transaction, so a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.db import connections

from taskmaster import embedded
from taskmaster.env import BASE_DIR
from taskmaster.llm.models import LLMModel, RoleDefault

FORMAT = "taskmaster-backup"
FORMAT_VERSION = 1
MEMBERS = ("db.dump", "models.json", "media.tar")
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup or restore cannot proceed; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]


@dataclass
class RestoreResult:
    database: str
    tables: int
    media_files: int
    models: list[str]
    missing_model_files: list[str] = field(default_factory=list)
    replaced_media: Path | None = None


# --- PostgreSQL client plumbing ----------------------------------------------------


def _pg_binary(name: str) -> str:
    """The embedded server's client binaries when DATABASE_URL is unset; else PG_BIN_DIR or PATH."""
    if not os.environ.get("DATABASE_URL"):
        return str(embedded.postgres_bin(name))
    bin_dir = os.environ.get("PG_BIN_DIR")
    if bin_dir:
        path = Path(bin_dir) / name
        if not path.is_file():
            raise BackupError(f"PG_BIN_DIR={bin_dir} has no {name}")
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    with contextlib.suppress(ImportError):
        bundled = embedded.postgres_bin(name)  # pgserver ships the client tools too
        if bundled.is_file():
            return str(bundled)
    raise BackupError(f"{name} is not on PATH; install the PostgreSQL client tools or set PG_BIN_DIR")


def _pg_env(db: dict[str, Any]) -> dict[str, str]:
    """libpq environment for the Django connection: the password never appears on a command line."""
    env = dict(os.environ)
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"):
        env.pop(key, None)
    env["PGDATABASE"] = str(db["NAME"])
    env["PGUSER"] = str(db.get("USER") or "postgres")
    if db.get("HOST"):
        env["PGHOST"] = str(db["HOST"])
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    return env


def _run(cmd: list[str], *, env: dict[str, str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=3600)
    except FileNotFoundError:
        raise BackupError(f"{what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what}: {Path(cmd[0]).name} ran for over an hour and was stopped") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: " + (" / ".join(detail[-3:]) if detail else f"exit {proc.returncode}"))
    return proc.stdout


def _db_settings() -> dict[str, Any]:
    return dict(connections["default"].settings_dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _app_version() -> str:
    try:
        return str(tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


# --- backup ------------------------------------------------------------------------


def _registry_manifest() -> dict[str, Any]:
    models = [
        {
            "name": m.name,
            "kind": m.kind,
            "file_path": m.file_path,
            "sha256": m.sha256,
            "size": m.file_size,
            "queue": m.queue_name,
            "enabled": m.enabled,
            "roles": m.roles,
            "hf_repo": m.hf_repo,
            "hf_filename": m.hf_filename,
            "settings": {
                "context_length": m.context_length,
                "n_threads": m.n_threads,
                "n_batch": m.n_batch,
                "n_gpu_layers": m.n_gpu_layers,
                "chat_format": m.chat_format,
                "chat_template": m.chat_template,
                "sampling": m.sampling,
            },
        }
        for m in LLMModel.objects.order_by("name")
    ]
    defaults = {d.role: d.model.name for d in RoleDefault.objects.select_related("model").order_by("role")}
    return {
        "note": "GGUF files are not in the backup; place each file_path under MODELS_DIR (check its sha256).",
        "models": models,
        "role_defaults": defaults,
    }


def _migrations() -> dict[str, str]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT app, max(name) FROM django_migrations GROUP BY app ORDER BY app")
        return {app: name for app, name in cursor.fetchall()}


def backup_create(*, output_dir: Path) -> BackupResult:
    """Write ``taskmaster-backup-<UTC time>.tar.gz`` into ``output_dir`` (mode 0600: it holds password hashes)."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create {output_dir}: {exc.strerror}") from None
    db = _db_settings()
    env = _pg_env(db)
    now = dt.datetime.now(dt.UTC)
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="tm-backup-") as tmp_name:
        tmp = Path(tmp_name)
        pg_dump = _pg_binary("pg_dump")
        _run([pg_dump, "-Fc", "--no-password", "-f", str(tmp / "db.dump")], env=env, what="pg_dump")
        (tmp / "models.json").write_text(json.dumps(_registry_manifest(), indent=2, sort_keys=True))
        media_files = 0
        with tarfile.open(tmp / "media.tar", "w") as media:
            if media_root.is_dir():
                for path in sorted(media_root.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        media.add(path, arcname=str(path.relative_to(media_root)), recursive=False)
                        media_files += 1
        with connections["default"].cursor() as cursor:
            cursor.execute("SHOW server_version")
            server_version = str(cursor.fetchone()[0])
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": now.isoformat(),
            "versions": {
                "taskmaster": _app_version(),
                "django": django.get_version(),
                "python": platform.python_version(),
                "postgres_server": server_version,
                "pg_dump": _run([pg_dump, "--version"], env=env, what="pg_dump --version").strip(),
            },
            "database": {"name": db["NAME"], "migrations": _migrations()},
            "media_files": media_files,
            "files": {name: {"sha256": _sha256(tmp / name), "size": (tmp / name).stat().st_size} for name in MEMBERS},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        target = output_dir / f"taskmaster-backup-{now:%Y%m%d-%H%M%S}.tar.gz"
        part = target.with_name(target.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                for name in ("manifest.json", *MEMBERS):
                    archive.add(tmp / name, arcname=name, recursive=False)
            part.replace(target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return BackupResult(path=target, manifest=manifest)


# --- verify --------------------------------------------------------------------------


def backup_verify(*, archive: Path, extract_to: Path) -> dict[str, Any]:
    """Check that ``archive`` is one of ours and every checksum matches; extract its members.

    Raises BackupError naming the problem; reads nothing but the archive and writes only
    into ``extract_to``.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise BackupError(f"{archive} does not exist or is not a file")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            if "manifest.json" not in names:
                raise BackupError(f"{archive} is not a Task Master backup: it has no manifest.json")
            unexpected = sorted(set(names) - {"manifest.json", *MEMBERS})
            if unexpected or len(names) != len(set(names)):
                raise BackupError(f"{archive} is not a Task Master backup: unexpected members {unexpected or names}")
            if any(not m.isfile() for m in members):
                raise BackupError(f"{archive} is not a Task Master backup: it holds links or folders")
            manifest_file = tar.extractfile("manifest.json")
            assert manifest_file is not None  # isfile() checked above
            try:
                manifest = json.loads(manifest_file.read())
            except ValueError as exc:
                raise BackupError(f"{archive}: manifest.json is not valid JSON ({exc})") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise BackupError(f"{archive} is not a Task Master backup (manifest format is not {FORMAT!r})")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise BackupError(
                    f"{archive} has backup format version {manifest.get('format_version')!r}; "
                    f"this version of Task Master reads version {FORMAT_VERSION}"
                )
            files = manifest.get("files")
            if not isinstance(files, dict) or sorted(files) != sorted(MEMBERS):
                raise BackupError(f"{archive}: manifest.json does not list the expected files {list(MEMBERS)}")
            for name in MEMBERS:
                if name not in names:
                    raise BackupError(f"{archive} is incomplete: {name} is missing")
                source = tar.extractfile(name)
                assert source is not None
                digest = hashlib.sha256()
                with open(extract_to / name, "wb") as out:
                    for block in iter(lambda: source.read(_CHUNK), b""):  # noqa: B023 - consumed in the loop
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != files[name].get("sha256"):
                    raise BackupError(
                        f"{archive} is corrupt: {name} has sha256 {digest.hexdigest()[:12]}…, "
                        f"the manifest says {str(files[name].get('sha256'))[:12]}…"
                    )
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{archive} is not a readable tar.gz archive ({exc})") from None
    return manifest


# --- restore -------------------------------------------------------------------------


def _public_tables() -> list[str]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [row[0] for row in cursor.fetchall()]


def _media_entries(media_root: Path) -> list[Path]:
    return list(media_root.iterdir()) if media_root.is_dir() else []


def backup_restore(*, archive: Path, force: bool = False) -> RestoreResult:
    """Restore ``archive`` into the configured database and MEDIA_ROOT.

    Order: verify every checksum, check the targets are empty (or ``force``), unpack media
    beside MEDIA_ROOT, apply the dump in one transaction, then swap the media folder in.
    Any failure before the swap leaves database and media as they were.
    """
    db = _db_settings()
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="tm-restore-") as tmp_name:
        tmp = Path(tmp_name)
        backup_verify(archive=archive, extract_to=tmp)
        registry = json.loads((tmp / "models.json").read_text())

        existing = _public_tables()
        if existing and not force:
            raise BackupError(
                f"database {db['NAME']} is not empty ({len(existing)} tables, e.g. {', '.join(existing[:3])}); "
                "restore into an empty database, or pass --force to replace its contents"
            )
        if _media_entries(media_root) and not force:
            raise BackupError(f"{media_root} is not empty; move it away, or pass --force to replace it")

        # Media first, into a sibling folder (same filesystem, so the final swap is a rename).
        media_root.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{media_root.name}.restore-", dir=media_root.parent))
        try:
            with tarfile.open(tmp / "media.tar") as media:
                media.extractall(staged, filter="data")
                media_files = sum(1 for m in media.getmembers() if m.isfile())
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise BackupError(f"cannot unpack the uploaded sources: {exc}") from None

        try:
            env = _pg_env(db)
            script = tmp / "restore.sql"
            _run(
                [_pg_binary("pg_restore"), "--no-owner", "--no-privileges", "-f", str(script), str(tmp / "db.dump")],
                env=env,
                what="pg_restore (reading the dump)",
            )
            preamble = tmp / "preamble.sql"
            # Dropping the schema (not just the tables in the dump) also removes tables a newer
            # migration added, so the result is exactly the backup. Same transaction as the load.
            preamble.write_text("DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n" if force else "")
            connections["default"].close()  # our own session must not hold locks on what we drop
            _run(
                [
                    _pg_binary("psql"),
                    "-X",
                    "-q",
                    "--no-password",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "--single-transaction",
                    "-f",
                    str(preamble),
                    "-f",
                    str(script),
                ],
                env=env,
                what="restoring the database",
            )
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    replaced: Path | None = None
    if media_root.exists():
        if _media_entries(media_root):
            replaced = media_root.with_name(f"{media_root.name}.pre-restore-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}")
            media_root.rename(replaced)
        else:
            media_root.rmdir()
    staged.rename(media_root)

    models_dir = Path(settings.MODELS_DIR)
    missing = []
    for entry in registry.get("models", []):
        path = Path(entry["file_path"])
        path = path if path.is_absolute() else models_dir / path
        if not path.is_file() or (entry.get("size") and path.stat().st_size != entry["size"]):
            missing.append(f"{entry['name']} ({entry['file_path']})")
    return RestoreResult(
        database=str(db["NAME"]),
        tables=len(_public_tables()),
        media_files=media_files,
        models=[entry["name"] for entry in registry.get("models", [])],
        missing_model_files=missing,
        replaced_media=replaced,
    )
