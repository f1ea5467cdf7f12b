"""The model registry: file verification, role defaults, and which model serves a call."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from taskmaster.llm.errors import ModelUnavailable
from taskmaster.llm.models import LLMModel, ModelKind, ModelRole, RoleDefault

GGUF_MAGIC = b"GGUF"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_problem(model: LLMModel, *, check_hash: bool = True) -> str | None:
    """Why the model's file cannot be used, or None when it can."""
    path = model.path
    models_dir = Path(settings.MODELS_DIR).resolve()
    try:
        resolved = path.resolve()
    except OSError as exc:
        return f"cannot resolve {path}: {exc.strerror}"
    if not resolved.is_relative_to(models_dir):
        return f"{path} is outside MODELS_DIR ({models_dir})"
    if not resolved.is_file():
        return f"model file {path} is missing"
    with open(resolved, "rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            return f"{path} is not a GGUF file (bad magic bytes)"
    if check_hash and model.sha256:
        actual = sha256_of(resolved)
        if actual != model.sha256:
            return f"{path} has sha256 {actual[:12]}…, expected {model.sha256[:12]}… (corrupt or replaced)"
    return None


@transaction.atomic
def model_verify(*, model: LLMModel, record_hash: bool = False) -> LLMModel:
    """Check the file and record the outcome on the model; never raises for a bad file."""
    problem = file_problem(model, check_hash=not record_hash)
    if problem is None and (record_hash or not model.sha256):
        model.sha256 = sha256_of(model.path)
    model.file_size = model.path.stat().st_size if model.path.is_file() else None
    model.available = problem is None
    model.last_error = problem or ""
    model.verified_at = timezone.now()
    model.save(update_fields=["sha256", "file_size", "available", "last_error", "verified_at", "updated_at"])
    return model


@transaction.atomic
def role_default_set(*, role: str, model: LLMModel) -> RoleDefault:
    if role not in ModelRole.values:
        raise ValueError(f"unknown role {role!r}")
    wanted_kind = ModelKind.EMBEDDING if role == ModelRole.EMBEDDING else ModelKind.CHAT
    if model.kind != wanted_kind:
        raise ValueError(f"{model.name} is a {model.kind} model and cannot serve the {role} role")
    if role not in model.roles:
        model.roles = [*model.roles, role]
        model.save(update_fields=["roles", "updated_at"])
    default, _ = RoleDefault.objects.update_or_create(role=role, defaults={"model": model})
    return default


def model_for_role(role: str) -> LLMModel:
    default = RoleDefault.objects.select_related("model").filter(role=role).first()
    if default is None:
        raise ModelUnavailable(f"no model is assigned to the {role!r} role; run `manage.py setup_models`")
    model = default.model
    if not model.enabled:
        raise ModelUnavailable(f"model {model.name} (role {role}) is disabled")
    if not model.available:
        raise ModelUnavailable(f"model {model.name} (role {role}) is unavailable: {model.last_error or 'not verified'}")
    return model


def model_by_name(name: str) -> LLMModel:
    model = LLMModel.objects.filter(name=name).first()
    if model is None:
        raise ModelUnavailable(f"no model named {name!r}")
    if not model.enabled or not model.available:
        raise ModelUnavailable(
            f"model {name} is {'disabled' if not model.enabled else 'unavailable'}: {model.last_error}"
        )
    return model


def default_models_problems() -> list[str]:
    problems = []
    for role in (ModelRole.MAIN, ModelRole.EMBEDDING):
        try:
            model_for_role(role)
        except ModelUnavailable as exc:
            problems.append(str(exc))
    return problems


def active_queues() -> list[str]:
    return sorted({m.queue_name for m in LLMModel.objects.filter(enabled=True)})
