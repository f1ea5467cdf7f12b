"""The model registry: file checks, the admin's verify and make-default actions, bad files.

Files are written into the shared MODELS_DIR under unique names and removed afterwards;
the two default model files there are never touched.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from taskmaster.llm import ModelFileError, ModelUnavailable, generate
from taskmaster.llm.defaults import CHAT_NAME, EMBED_NAME
from taskmaster.llm.models import LLMModel, ModelKind, ModelRole, RoleDefault
from taskmaster.llm.registry import model_for_role, model_verify, role_default_set
from tests.conftest import Workers

CHANGELIST = "admin:taskmaster_llmmodel_changelist"


def write_tiny_gguf(path: Path, *, context_length: int = 256) -> str:
    """A small valid GGUF (one tensor): enough for header and hash checks, not for llama.cpp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(context_length)
    writer.add_tensor("t", np.arange(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Scratch:
    """Unique names in MODELS_DIR; everything created under them is removed at the end."""

    prefix: str
    created: list[Path] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return Path(settings.MODELS_DIR)

    def name(self, stem: str) -> str:
        return f"{self.prefix}-{stem}"

    def path(self, filename: str) -> Path:
        p = self.dir / filename
        self.created.append(p)
        return p

    def leftovers(self) -> list[Path]:
        return sorted(p for p in self.dir.rglob("*") if p.is_file() and self.prefix in str(p.relative_to(self.dir)))


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    models_dir = Path(settings.MODELS_DIR)
    protected = {p: p.stat().st_mtime_ns for p in models_dir.glob("*.gguf")}
    hf_cache_existed = (models_dir / ".cache").exists()
    s = Scratch(prefix=f"t{uuid.uuid4().hex[:10]}")
    yield s
    for p in [*s.created, *sorted(models_dir.rglob(f"*{s.prefix}*"), key=lambda q: len(q.parts))]:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.is_file():
            p.unlink()
    if not hf_cache_existed and (models_dir / ".cache").exists():
        shutil.rmtree(models_dir / ".cache")
    for p, mtime in protected.items():
        assert p.stat().st_mtime_ns == mtime, f"a test modified {p}"


@pytest.fixture
def staff(db: None) -> Client:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-enough-passphrase-9")
    client = Client()
    client.force_login(admin)
    return client


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def make_model(scratch: Scratch, stem: str, *, kind: str = ModelKind.CHAT, verify: bool = True) -> LLMModel:
    filename = scratch.name(f"{stem}.gguf")
    write_tiny_gguf(scratch.path(filename))
    model = LLMModel.objects.create(name=scratch.name(stem), kind=kind, file_path=filename)
    if verify:
        model_verify(model=model, record_hash=True)
    return model


def run_action(client: Client, action: str, *models: LLMModel) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [m.pk for m in models]},
        follow=True,
    )


# --- model_verify ---------------------------------------------------------------------------


def test_verify_records_size_and_hash_of_a_good_file(db: None, scratch: Scratch) -> None:
    model = make_model(scratch, "good", verify=False)
    expected = hashlib.sha256(model.path.read_bytes()).hexdigest()
    model_verify(model=model, record_hash=True)
    model.refresh_from_db()
    assert model.available and model.last_error == ""
    assert model.sha256 == expected
    assert model.file_size == model.path.stat().st_size
    assert model.verified_at is not None


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "is missing"),
        ("not_gguf", "not a GGUF file"),
        ("wrong_hash", "has sha256"),
    ],
)
def test_verify_action_reports_each_bad_file_and_marks_it_unavailable(
    staff: Client, scratch: Scratch, damage: str, expected: str
) -> None:
    good = make_model(scratch, "good")
    bad = make_model(scratch, "bad")
    assert bad.available
    if damage == "missing":
        bad.path.unlink()
    elif damage == "not_gguf":
        bad.path.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    else:
        data = bytearray(bad.path.read_bytes())
        data[-1] ^= 0xFF  # same header, different content
        bad.path.write_bytes(bytes(data))

    response = run_action(staff, "verify", good, bad)

    assert response.status_code == 200
    msgs = messages_of(response)
    assert ("success", f"{good.name}: file OK") in [(lvl, text.split(" (")[0]) for lvl, text in msgs]
    errors = [text for lvl, text in msgs if lvl == "error"]
    assert len(errors) == 1
    assert bad.name in errors[0] and expected in errors[0] and bad.file_path in errors[0]
    bad.refresh_from_db()
    good.refresh_from_db()
    assert not bad.available and expected in bad.last_error
    assert good.available and good.last_error == ""
    # The changelist shows the reason next to the model.
    page = staff.get(reverse(CHANGELIST)).content.decode()
    assert expected in page


def test_verify_of_a_file_outside_models_dir_is_refused(db: None, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.gguf"
    write_tiny_gguf(outside)
    model = LLMModel.objects.create(name="outside", file_path=str(outside))
    model_verify(model=model, record_hash=True)
    assert not model.available
    assert "outside MODELS_DIR" in model.last_error
    assert model.sha256 == ""


# --- make default for role ---------------------------------------------------------------------


def test_make_default_action_sets_the_role_and_adds_it_to_the_model(staff: Client, scratch: Scratch) -> None:
    old = make_model(scratch, "old")
    role_default_set(role=ModelRole.RESEARCH, model=old)
    new = make_model(scratch, "new")

    response = run_action(staff, "make_default_research", new)

    assert ("success", f"{new.name} is now the default for research.") in messages_of(response)
    assert RoleDefault.objects.get(role=ModelRole.RESEARCH).model == new
    new.refresh_from_db()
    assert ModelRole.RESEARCH in new.roles
    assert model_for_role(ModelRole.RESEARCH) == new
    assert "research" in staff.get(reverse("admin:taskmaster_llmmodel_change", args=[new.pk])).content.decode()


def test_make_default_refuses_wrong_kind_unavailable_and_several(staff: Client, scratch: Scratch) -> None:
    chat = make_model(scratch, "chat")
    role_default_set(role=ModelRole.MAIN, model=chat)
    emb = make_model(scratch, "emb", kind=ModelKind.EMBEDDING)
    broken = make_model(scratch, "broken")
    broken.path.unlink()
    model_verify(model=broken)

    wrong_kind = messages_of(run_action(staff, "make_default_main", emb))
    unavailable = messages_of(run_action(staff, "make_default_main", broken))
    several = messages_of(run_action(staff, "make_default_main", chat, emb))

    assert wrong_kind == [("error", f"{emb.name} is a embedding model and cannot serve the main role")]
    assert unavailable[0][0] == "error"
    assert "unavailable" in unavailable[0][1] and "is missing" in unavailable[0][1]
    assert several == [("error", "Select exactly one model.")]
    assert RoleDefault.objects.get(role=ModelRole.MAIN).model == chat


# --- bad files at run time, through the real workers ----------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "deleted"])
def test_generate_on_a_file_damaged_after_verification_fails_clearly(
    llm: Workers, scratch: Scratch, damage: str
) -> None:
    # Served by the running inference worker: the default chat model's queue.
    model = make_model(scratch, "damaged")
    model.queue = f"llm.{CHAT_NAME}"
    model.save(update_fields=["queue"])
    assert model.available
    if damage == "corrupt":
        data = bytearray(model.path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.path.write_bytes(bytes(data))
    else:
        model.path.unlink()

    with pytest.raises(ModelFileError) as err:
        generate([{"role": "user", "content": "Hi"}], model=model.name, max_tokens=4)

    assert model.file_path in str(err.value)
    assert ("expected" if damage == "corrupt" else "is missing") in str(err.value)
    model.refresh_from_db()
    assert not model.available
    assert model.last_error == str(err.value)
    # The next call is refused before it reaches a worker, naming the reason.
    with pytest.raises(ModelUnavailable, match=model.file_path):
        generate([{"role": "user", "content": "Hi"}], model=model.name, max_tokens=4)
    # Nothing else broke: the default model still answers.
    completion = generate([{"role": "user", "content": "Say hi."}], max_tokens=8)
    assert completion.model == CHAT_NAME
    assert completion.usage.completion_tokens > 0
    assert LLMModel.objects.get(name=CHAT_NAME).available
    assert LLMModel.objects.get(name=EMBED_NAME).available
