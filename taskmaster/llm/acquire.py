"""Adding a model file to the registry: upload, server path, or a Hugging Face download.

Every source ends the same way: the file sits under MODELS_DIR (never half-written:
uploads and copies go to a ``.part`` file that is renamed only once complete and
checked), the ``LLMModel`` row is created or updated, and ``model_verify`` records
size and sha256. A file that is not GGUF is removed and nothing is registered.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import struct
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from taskmaster.llm.models import LLMModel, ModelKind
from taskmaster.llm.registry import GGUF_MAGIC, model_verify, sha256_of
from taskmaster.models import Job, Team

log = logging.getLogger(__name__)

DOWNLOAD_JOB_KIND = "llm.model_download"
PART_SUFFIX = ".part"
DEFAULT_CONTEXT = {ModelKind.CHAT: 2048, ModelKind.EMBEDDING: 512}
_MIB = 1 << 20


class AcquireError(Exception):
    """A model file could not be added; the message says why, for the admin."""


def models_dir() -> Path:
    path = Path(settings.MODELS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


# --- checks ----------------------------------------------------------------------------


def gguf_header_problem(path: Path) -> str | None:
    """Why ``path`` is not a GGUF file (magic bytes and version), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if head[:4] != GGUF_MAGIC:
        return f"{path.name} is not a GGUF file (it does not start with the bytes 'GGUF')"
    if len(head) < 8:
        return f"{path.name} is truncated: it ends inside the GGUF header"
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        return f"{path.name} has GGUF version {version}, which llama.cpp does not read (expected 1 to 3)"
    return None


def clean_relative_name(name: str) -> str:
    """A file name (optionally in subfolders) to place under MODELS_DIR; refuses escapes."""
    name = name.strip().replace("\\", "/")
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or any(part in ("", ".", "..") for part in pure.parts):
        raise AcquireError(f"{name!r} is not a valid file name inside MODELS_DIR")
    if any(part.startswith(".") for part in pure.parts):
        raise AcquireError(f"{name!r}: file and folder names may not start with a dot")
    if name.endswith(PART_SUFFIX):
        raise AcquireError(f"{name!r}: names ending in {PART_SUFFIX} are reserved for unfinished transfers")
    return str(pure)


def _users_of(rel: str) -> list[LLMModel]:
    """Registry rows that use the file ``rel`` (relative or absolute path inside MODELS_DIR)."""
    target = (models_dir() / rel).resolve()
    return [m for m in LLMModel.objects.all() if m.path.resolve() == target]


def _check_name(*, name: str, kind: str, replace: bool) -> LLMModel | None:
    existing = LLMModel.objects.filter(name=name).first()
    if existing is None:
        return None
    if not replace:
        raise AcquireError(
            f"a model named {name!r} already exists; tick “replace” to point it at the new file, or choose another name"
        )
    if existing.kind != kind:
        raise AcquireError(
            f"{name} is a {existing.kind} model; a replacement must be one too (delete it to change its kind)"
        )
    return existing


def _check_destination(*, rel: str, name: str, sha256: str | None) -> bool:
    """Whether ``rel`` may be written. Returns True when an identical file is already there."""
    dest = models_dir() / rel
    users = _users_of(rel)
    others = [m.name for m in users if m.name != name]
    if others:
        raise AcquireError(f"MODELS_DIR/{rel} is the file of model {', '.join(others)}; choose another file name")
    if dest.exists():
        if not dest.is_file():
            raise AcquireError(f"MODELS_DIR/{rel} exists and is not a file")
        if sha256 is not None and sha256_of(dest) == sha256:
            return True
        if not any(m.name == name for m in users):
            raise AcquireError(f"a different file named {rel} already exists in MODELS_DIR; choose another file name")
    return False


@transaction.atomic
def _register(
    *, name: str, kind: str, context_length: int | None, rel: str, hf_repo: str = "", hf_filename: str = ""
) -> LLMModel:
    model = LLMModel.objects.select_for_update().filter(name=name).first()
    if model is None:
        model = LLMModel(name=name, kind=kind)
    model.file_path = rel
    model.sha256 = ""
    if context_length:
        model.context_length = context_length
    elif model.pk is None:
        model.context_length = DEFAULT_CONTEXT[ModelKind(kind)]
    if model.pk is None and kind == ModelKind.EMBEDDING:
        model.sampling = {}
    model.hf_repo, model.hf_filename = hf_repo, hf_filename
    model.save()
    return model_verify(model=model, record_hash=True)


# --- (a) upload ---------------------------------------------------------------------------


class StreamedGGUF(UploadedFile):
    """An upload already written to ``MODELS_DIR/<random>.part``, hashed on the way."""

    def __init__(self, *, part: Path | None, name: str, size: int, sha256: str, problem: str | None) -> None:
        super().__init__(file=None, name=name, content_type="application/octet-stream", size=size)
        self.part = part
        self.sha256 = sha256
        self.problem = problem

    def discard(self) -> None:
        if self.part is not None:
            self.part.unlink(missing_ok=True)
            self.part = None


class GGUFUploadHandler(FileUploadHandler):
    """Streams an uploaded model straight into MODELS_DIR instead of memory or /tmp.

    The first bytes are checked as they arrive: a file that is not GGUF is dropped at
    once and the rest of it is read and thrown away.
    """

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.part: Path | None = models_dir() / f".upload-{uuid.uuid4().hex}{PART_SUFFIX}"
        self.fh = open(self.part, "wb")  # noqa: SIM115 - closed in file_complete/upload_interrupted
        self.digest = hashlib.sha256()
        self.size = 0
        self.received = 0
        self.head = b""
        self.problem: str | None = None
        raise StopFutureHandlers()

    def _drop(self, problem: str) -> None:
        self.problem = problem
        self.fh.close()
        if self.part is not None:
            self.part.unlink(missing_ok=True)
            self.part = None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.problem is not None:
            return None
        if len(self.head) < 4:
            self.head += raw_data[: 4 - len(self.head)]
            if len(self.head) == 4 and self.head != GGUF_MAGIC:
                self._drop(f"{self.file_name} is not a GGUF file (it does not start with the bytes 'GGUF')")
                return None
        try:
            self.fh.write(raw_data)
        except OSError as exc:
            self._drop(f"could not write the upload into MODELS_DIR: {exc.strerror}")
            return None
        self.digest.update(raw_data)
        self.size += len(raw_data)
        return None

    def file_complete(self, file_size: int) -> StreamedGGUF:
        if self.problem is None:
            self.fh.close()
            if 0 < self.size < 4:
                self._drop(f"{self.file_name} is not a GGUF file (only {self.size} bytes)")
        return StreamedGGUF(
            part=self.part,
            name=self.file_name or "upload.gguf",
            size=self.received,  # what arrived, so an empty upload is told apart from a refused one
            sha256=self.digest.hexdigest(),
            problem=self.problem,
        )

    def upload_interrupted(self) -> None:
        if self.problem is None:
            self._drop("the upload was interrupted")


def model_add_from_upload(
    *, upload: StreamedGGUF, name: str, kind: str, context_length: int | None, filename: str, replace: bool
) -> LLMModel:
    """Register an uploaded file. The ``.part`` file is moved into place or removed."""
    try:
        if upload.problem:
            raise AcquireError(upload.problem)
        if upload.part is None or not upload.part.is_file():
            raise AcquireError("the upload did not arrive completely; try again")
        problem = gguf_header_problem(upload.part)
        if problem:
            raise AcquireError(problem.replace(upload.part.name, upload.name or "the upload"))
        _check_name(name=name, kind=kind, replace=replace)
        rel = clean_relative_name(filename or Path(upload.name or "").name)
        identical = _check_destination(rel=rel, name=name, sha256=upload.sha256)
        dest = models_dir() / rel
        if not identical:
            dest.parent.mkdir(parents=True, exist_ok=True)
            upload.part.replace(dest)
            upload.part = None
        try:
            return _register(name=name, kind=kind, context_length=context_length, rel=rel)
        except Exception:
            if not identical:
                dest.unlink(missing_ok=True)
            raise
    finally:
        upload.discard()


# --- (b) server path -------------------------------------------------------------------------


def model_add_from_path(
    *, source: str, name: str, kind: str, context_length: int | None, filename: str, replace: bool
) -> LLMModel:
    """Register a file already on the server; copied into MODELS_DIR unless it is inside it."""
    src = Path(source.strip())
    if not src.is_absolute():
        raise AcquireError(f"{source!r} is not an absolute path")
    if not src.exists():
        raise AcquireError(f"{src} does not exist on the server")
    if not src.is_file():
        raise AcquireError(f"{src} is not a file")
    problem = gguf_header_problem(src)
    if problem:
        raise AcquireError(problem)
    _check_name(name=name, kind=kind, replace=replace)
    base = models_dir()
    resolved = src.resolve()
    if resolved.is_relative_to(base):
        rel = str(resolved.relative_to(base))
        others = [m.name for m in _users_of(rel) if m.name != name]
        if others:
            raise AcquireError(f"{src} is already the file of model {', '.join(others)}")
        return _register(name=name, kind=kind, context_length=context_length, rel=rel)
    rel = clean_relative_name(filename or src.name)
    dest = base / rel
    source_hash = sha256_of(resolved)
    identical = _check_destination(rel=rel, name=name, sha256=source_hash)
    if not identical:
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}{PART_SUFFIX}")
        try:
            shutil.copyfile(resolved, part)
            if sha256_of(part) != source_hash:
                raise AcquireError(f"{src} changed while it was being copied; try again")
            part.replace(dest)
        except OSError as exc:
            raise AcquireError(f"could not copy {src} into MODELS_DIR: {exc.strerror or exc}") from exc
        finally:
            part.unlink(missing_ok=True)
    try:
        return _register(name=name, kind=kind, context_length=context_length, rel=rel)
    except Exception:
        if not identical:
            dest.unlink(missing_ok=True)
        raise


# --- (c) Hugging Face ---------------------------------------------------------------------------


def _admin_team(user: User | AnonymousUser | None) -> Team | None:
    if user is None or not user.is_authenticated:
        return None
    return Team.objects.filter(memberships__user=user).order_by("pk").first()


@transaction.atomic
def model_add_from_hf(
    *,
    repo_id: str,
    filename: str,
    name: str,
    kind: str,
    context_length: int | None,
    replace: bool,
    user: User | AnonymousUser | None = None,
) -> tuple[LLMModel, Job | None]:
    """Record the request and enqueue the download on the jobs queue.

    A new model's row exists at once (unavailable until the file is there). A model
    being replaced keeps serving its current file until the new one is verified.
    The Job (progress bar) needs a team: it is created in the admin's first team, and
    skipped when the admin belongs to none; the row tells the outcome either way.
    """
    from taskmaster import services
    from taskmaster.llm.tasks import llm_model_download

    repo_id = repo_id.strip()
    rel = clean_relative_name(filename)
    existing = _check_name(name=name, kind=kind, replace=replace)
    others = [m.name for m in _users_of(rel) if m.name != name]
    if others:
        raise AcquireError(f"MODELS_DIR/{rel} is the file of model {', '.join(others)}; it cannot be downloaded over")
    if existing is None:
        model = LLMModel.objects.create(
            name=name,
            kind=kind,
            file_path=rel,
            context_length=context_length or DEFAULT_CONTEXT[ModelKind(kind)],
            sampling={} if kind == ModelKind.EMBEDDING else LLMModel._meta.get_field("sampling").get_default(),
            available=False,
            last_error=f"waiting for the download of {repo_id}/{rel}",
            hf_repo=repo_id,
            hf_filename=rel,
        )
    else:
        model = existing
        model.hf_repo, model.hf_filename = repo_id, rel
        if context_length:
            model.context_length = context_length
        model.save(update_fields=["hf_repo", "hf_filename", "context_length", "updated_at"])
    job = None
    team = _admin_team(user)
    if team is not None:
        job = services.job_create(
            team=team,
            kind=DOWNLOAD_JOB_KIND,
            title=f"Download {repo_id}/{rel}",
            created_by=user if isinstance(user, User) else None,
            params={"model_id": model.pk, "repo_id": repo_id, "filename": rel},
        )
    job_id = job.pk if job else None
    transaction.on_commit(lambda: llm_model_download.delay(model.pk, job_id))
    return model, job


def latest_download_job(model: LLMModel) -> Job | None:
    return Job.objects.filter(kind=DOWNLOAD_JOB_KIND, params__model_id=model.pk).order_by("-created_at").first()


def _hf_error_message(repo_id: str, filename: str, exc: BaseException) -> str:
    from huggingface_hub import errors

    where = f"{repo_id}/{filename}"
    if isinstance(exc, errors.HFValidationError):
        return f"invalid Hugging Face repository or file name {where!r}: {exc}"
    if isinstance(exc, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        return (
            f"could not download {where}: the Hugging Face Hub cannot be reached from this server "
            "(no internet connection, or HF_HUB_OFFLINE is set) and no earlier partial download exists"
        )
    if isinstance(exc, errors.GatedRepoError):
        return f"could not download {where}: the repository is gated; accept its licence and set HF_TOKEN"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return f"could not download {where}: repository {repo_id} does not exist or is private (set HF_TOKEN)"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"could not download {where}: revision not found"
    if isinstance(exc, errors.EntryNotFoundError):
        return f"could not download {where}: the repository has no file named {filename}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"could not download {where}: {exc.strerror}"
    return f"could not download {where}: {type(exc).__name__}: {exc}"


def _progress_class(job_id: int | None, label: str) -> Any:
    from tqdm.auto import tqdm

    from taskmaster import services

    class JobProgress(tqdm):  # type: ignore[misc,type-arg]
        """Reports bytes to the Job (in MiB: Job counters are 32-bit) at most once a second."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self._reported = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            self.n += n or 0
            now = time.monotonic()
            if job_id is not None and now - self._reported >= 1.0:
                self._reported = now
                total = int(self.total or 0)
                services.job_progress(
                    job_id=job_id,
                    done=int(self.n) // _MIB,
                    total=total // _MIB or None,
                    message=f"{label}: {filesizeformat(int(self.n))}"
                    + (f" of {filesizeformat(total)}" if total else ""),
                )
            return None

    return JobProgress


def _forget_download(base: Path, rel: str) -> None:
    """Remove a bad downloaded file and hf's record of it, so a retry downloads afresh."""
    (base / rel).unlink(missing_ok=True)
    meta = base / ".cache" / "huggingface" / "download"
    for suffix in (".metadata", ".lock"):
        (meta / f"{rel}{suffix}").unlink(missing_ok=True)


def model_download_hf(*, model_id: int, job_id: int | None = None) -> LLMModel:
    """Download the model's Hugging Face file into MODELS_DIR, then verify and record it.

    Idempotent and resumable: ``hf_hub_download`` keeps partial downloads and skips a
    file it already has. Never raises for a download problem; the row and the Job say
    what went wrong.
    """
    from huggingface_hub import hf_hub_download

    from taskmaster import services

    model = LLMModel.objects.get(pk=model_id)
    repo_id, rel = model.hf_repo, model.hf_filename
    label = f"{repo_id}/{rel}"
    if job_id is not None:
        services.job_start(job_id=job_id, message=f"Downloading {label}")
    base = models_dir()
    try:
        if not repo_id or not rel:
            raise AcquireError(f"{model.name} has no Hugging Face repository and file name to download")
        rel = clean_relative_name(rel)
        downloaded = Path(
            hf_hub_download(repo_id=repo_id, filename=rel, local_dir=base, tqdm_class=_progress_class(job_id, label))
        )
        problem = gguf_header_problem(downloaded)
        if problem:
            _forget_download(base, rel)
            raise AcquireError(f"{label} was downloaded but {problem}; the file was removed")
    except Exception as exc:  # noqa: BLE001 - whatever went wrong is recorded on the row and the Job
        message = exc.args[0] if isinstance(exc, AcquireError) else _hf_error_message(repo_id, rel, exc)
        log.warning("model download failed: %s", message)
        _download_failed(model, message)
        if job_id is not None:
            services.job_fail(job_id=job_id, error=message)
        return LLMModel.objects.get(pk=model_id)
    model = _register(
        name=model.name,
        kind=model.kind,
        context_length=model.context_length,
        rel=str(downloaded.resolve().relative_to(base)),
        hf_repo=repo_id,
        hf_filename=rel,
    )
    if job_id is not None:
        if model.available:
            services.job_succeed(
                job_id=job_id,
                result={"model_id": model.pk, "sha256": model.sha256, "size": model.file_size},
                message=f"{label}: {filesizeformat(model.file_size or 0)}, sha256 {model.sha256[:12]}…",
            )
        else:
            services.job_fail(job_id=job_id, error=model.last_error)
    return model


def _download_failed(model: LLMModel, message: str) -> None:
    # A model being replaced keeps serving its current, verified file; a new one stays
    # unavailable with the reason.
    if model.available:
        LLMModel.objects.filter(pk=model.pk).update(last_error=f"last download failed: {message}")
    else:
        LLMModel.objects.filter(pk=model.pk).update(available=False, last_error=message)


# --- workers -----------------------------------------------------------------------------------


def inference_workers_consume(queue: str, *, timeout: float = 1.0) -> list[str]:
    """Ask running inference workers (those consuming some ``llm.*`` queue) to consume ``queue``.

    Returns the workers that now consume it; empty when none is running (the queue is
    picked up at their next start, since ``inference_worker`` consumes every enabled model).
    """
    from taskmaster.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # broker down: the admin still gets its answer, workers pick it up at start
        log.warning("could not reach the Celery workers", exc_info=True)
        return []
    serving: list[str] = []
    for worker, queues in replies.items():
        names = {q.get("name", "") for q in queues}
        if queue in names:
            serving.append(worker)
        elif any(n.startswith("llm.") for n in names):
            app.control.add_consumer(queue, destination=[worker], reply=False)
            serving.append(worker)
    return serving


def request_upload_handlers(request: HttpRequest) -> None:
    """Make ``request`` stream its file fields into MODELS_DIR (call before reading POST/FILES)."""
    request.upload_handlers = [GGUFUploadHandler(request)]


__all__ = [
    "AcquireError",
    "GGUFUploadHandler",
    "StreamedGGUF",
    "gguf_header_problem",
    "inference_workers_consume",
    "latest_download_job",
    "model_add_from_hf",
    "model_add_from_path",
    "model_add_from_upload",
    "model_download_hf",
]
