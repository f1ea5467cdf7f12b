"""Snapshots of model-registry rows (LLMModel, RoleDefault) so their edits can be rolled back.

Only configuration is snapshotted: verification results (available, sha256, last_error...)
are facts about the file, restored by verifying again, not by a rollback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from recovery.models import RegistryRevision
from taskmaster.llm.models import LLMModel, RoleDefault

log = logging.getLogger(__name__)

MODEL_FIELDS = (
    "name",
    "kind",
    "file_path",
    "context_length",
    "n_threads",
    "n_batch",
    "n_gpu_layers",
    "chat_format",
    "chat_template",
    "sampling",
    "roles",
    "enabled",
    "queue",
    "hf_repo",
    "hf_filename",
)


def model_snapshot(model: LLMModel) -> dict[str, Any]:
    return {f: getattr(model, f) for f in MODEL_FIELDS}


def role_snapshot(default: RoleDefault) -> dict[str, Any]:
    return {"model": LLMModel.objects.filter(pk=default.model_id).values_list("name", flat=True).first()}


def current(kind: str, key: str) -> dict[str, Any]:
    if kind == RegistryRevision.Kind.MODEL:
        model = LLMModel.objects.filter(pk=int(key)).first()
        return model_snapshot(model) if model else {}
    default = RoleDefault.objects.filter(role=key).first()
    return role_snapshot(default) if default else {}


def restore(kind: str, key: str, before: dict[str, Any] | None) -> None:
    """Write ``before`` back (None: the row did not exist, so delete it); the write is itself recorded."""
    if kind == RegistryRevision.Kind.MODEL:
        model = LLMModel.objects.filter(pk=int(key)).first()
        if before is None:
            if model is not None:
                model.delete()
            return
        model = model or LLMModel(pk=int(key))
        for f, v in before.items():
            setattr(model, f, v)
        model.save()
        return
    default = RoleDefault.objects.filter(role=key).first()
    if before is None or before.get("model") is None:
        if default is not None:
            default.delete()
        return
    target = LLMModel.objects.filter(name=before["model"]).first()
    if target is None:
        from django.core.exceptions import ValidationError

        raise ValidationError(f"Cannot roll back: model {before['model']} no longer exists.")
    default = default or RoleDefault(role=key)
    default.model = target
    default.save()


def _before_model(sender: type[LLMModel], instance: LLMModel, raw: bool = False, **_: Any) -> None:
    if raw:
        return
    old = LLMModel.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._recovery_before = model_snapshot(old) if old else None  # type: ignore[attr-defined]


def _after_model(sender: type[LLMModel], instance: LLMModel, created: bool, raw: bool = False, **_: Any) -> None:
    if raw:
        return
    from recovery.services import registry_record

    before = getattr(instance, "_recovery_before", None)
    after = model_snapshot(instance)
    if before is not None:
        changed = sorted(k for k in after if before.get(k) != after[k])
        what = f"Model {instance.name}: changed {', '.join(changed)}" if changed else ""
    else:
        what = f"Model {instance.name} added"
    if before is None or what:
        registry_record(
            kind=RegistryRevision.Kind.MODEL, object_key=str(instance.pk), description=what, before=before, after=after
        )


def _deleted_model(sender: type[LLMModel], instance: LLMModel, **_: Any) -> None:
    from recovery.services import registry_record

    registry_record(
        kind=RegistryRevision.Kind.MODEL,
        object_key=str(instance.pk),
        description=f"Model {instance.name} deleted",
        before=model_snapshot(instance),
        after={},
    )


def _before_role(sender: type[RoleDefault], instance: RoleDefault, raw: bool = False, **_: Any) -> None:
    if raw:
        return
    old = RoleDefault.objects.filter(role=instance.role).first()
    instance._recovery_before = role_snapshot(old) if old else None  # type: ignore[attr-defined]


def _after_role(sender: type[RoleDefault], instance: RoleDefault, raw: bool = False, **_: Any) -> None:
    if raw:
        return
    from recovery.services import registry_record

    before = getattr(instance, "_recovery_before", None)
    after = role_snapshot(instance)
    old = (before or {}).get("model") or "nothing"
    registry_record(
        kind=RegistryRevision.Kind.ROLE_DEFAULT,
        object_key=instance.role,
        description=f"Role {instance.role}: {old} → {after['model']}",
        before=before,
        after=after,
    )


def _deleted_role(sender: type[RoleDefault], instance: RoleDefault, **_: Any) -> None:
    from recovery.services import registry_record

    registry_record(
        kind=RegistryRevision.Kind.ROLE_DEFAULT,
        object_key=instance.role,
        description=f"Role {instance.role}: default removed",
        before=role_snapshot(instance),
        after={},
    )


def connect() -> None:
    pre_save.connect(_before_model, sender=LLMModel, dispatch_uid="recovery_model_pre")
    post_save.connect(_after_model, sender=LLMModel, dispatch_uid="recovery_model_post")
    post_delete.connect(_deleted_model, sender=LLMModel, dispatch_uid="recovery_model_del")
    pre_save.connect(_before_role, sender=RoleDefault, dispatch_uid="recovery_role_pre")
    post_save.connect(_after_role, sender=RoleDefault, dispatch_uid="recovery_role_post")
    post_delete.connect(_deleted_role, sender=RoleDefault, dispatch_uid="recovery_role_del")
