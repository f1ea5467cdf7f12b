"""The admin's "Add model from a file" page: upload, server path and Hugging Face sources."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from taskmaster.llm.acquire import model_add_from_hf, model_download_hf
from taskmaster.llm.models import LLMModel, ModelKind
from taskmaster.llm.tasks import llm_model_download
from taskmaster.models import Job, Membership, Role, Team
from tests.conftest import Trio, Workers
from tests.llm.test_registry import CHANGELIST, Scratch, messages_of, scratch, staff, write_tiny_gguf

__all__ = ["scratch", "staff"]  # fixtures used here

ADD = "admin:taskmaster_llmmodel_add_from_file"


def post(client: Client, **data: Any) -> Any:
    return client.post(reverse(ADD), {"kind": ModelKind.CHAT, **data}, follow=True)


def part_files(scratch: Scratch) -> list[Path]:
    return [p for p in scratch.dir.rglob("*.part") if p.is_file()]


# --- the page and who may see it ------------------------------------------------------------------


def test_changelist_links_to_the_add_page_and_shows_file_size_and_availability(staff: Client, scratch: Scratch) -> None:
    filename = scratch.name("shown.gguf")
    write_tiny_gguf(scratch.path(filename))
    staff.post(
        reverse(ADD),
        {"source": "path", "name": scratch.name("shown"), "kind": "chat", "server_path": str(scratch.dir / filename)},
    )
    page = staff.get(reverse(CHANGELIST)).content.decode()
    assert reverse(ADD) in page and "Add model from a file" in page
    model = LLMModel.objects.get(name=scratch.name("shown"))
    assert f"{model.file_size}\xa0bytes" in page
    assert "✔ available" in page
    assert "not loaded by any worker yet" in page
    form = staff.get(reverse(ADD)).content.decode()
    for label in ("GGUF file", "Absolute path on the server", "Repository", "File in the repository"):
        assert f">{label}:</label>" in form
    assert 'enctype="multipart/form-data"' in form


@pytest.mark.parametrize("who", ["owner", "member", "outsider"])
def test_non_staff_users_are_redirected_to_the_admin_login(trio: Trio, scratch: Scratch, who: str) -> None:
    client = Client()
    client.force_login(getattr(trio, who))
    for url in (reverse(ADD), reverse(CHANGELIST)):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    filename = scratch.name("sneaky.gguf")
    response = client.post(
        reverse(ADD),
        {
            "source": "upload",
            "name": scratch.name("sneaky"),
            "kind": "chat",
            "file": SimpleUploadedFile(filename, b"GGUF\x03\x00\x00\x00" + b"\0" * 64),
        },
    )
    assert response.status_code == 302
    assert not LLMModel.objects.filter(name=scratch.name("sneaky")).exists()
    assert not (scratch.dir / filename).exists() and not part_files(scratch)


def test_the_form_needs_a_csrf_token(db: None, scratch: Scratch) -> None:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("csrf", "c@example.com", "a-long-enough-passphrase-9")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post(reverse(ADD), {"source": "path", "name": scratch.name("x"), "server_path": "/x.gguf"})
    assert response.status_code == 403


# --- (a) upload ------------------------------------------------------------------------------------


def test_upload_of_a_valid_gguf_is_stored_hashed_and_available(staff: Client, scratch: Scratch, tmp_path: Path) -> None:
    src = tmp_path / "tiny.gguf"
    digest = write_tiny_gguf(src)
    filename = scratch.name("uploaded.gguf")
    scratch.path(filename)
    name = scratch.name("uploaded")

    with open(src, "rb") as fh:
        response = post(staff, source="upload", name=name, file=fh, filename=filename, context_length=1024)

    model = LLMModel.objects.get(name=name)
    assert response.redirect_chain[-1][0] == reverse("admin:taskmaster_llmmodel_change", args=[model.pk])
    assert model.available and model.last_error == ""
    assert model.file_path == filename
    assert model.sha256 == digest
    assert model.file_size == src.stat().st_size
    assert model.context_length == 1024 and model.kind == ModelKind.CHAT
    assert (scratch.dir / filename).read_bytes() == src.read_bytes()
    assert not part_files(scratch)
    success = [text for level, text in messages_of(response) if level == "success"]
    assert success and digest[:12] in success[0] and "available" in success[0]


def test_upload_keeps_the_original_name_when_no_name_is_given(staff: Client, scratch: Scratch) -> None:
    filename = scratch.name("orig.gguf")
    scratch.path(filename)
    tiny = scratch.dir / scratch.name("src") / "x.gguf"
    write_tiny_gguf(tiny)
    upload = SimpleUploadedFile(filename, tiny.read_bytes())
    post(staff, source="upload", name=scratch.name("orig"), file=upload, kind="embedding")
    model = LLMModel.objects.get(name=scratch.name("orig"))
    assert model.file_path == filename and model.available
    assert model.kind == ModelKind.EMBEDDING and model.context_length == 512


def test_upload_of_a_non_gguf_file_is_refused_and_removed(staff: Client, scratch: Scratch) -> None:
    filename = scratch.name("notes.gguf")
    upload = SimpleUploadedFile(filename, b"just some notes, not a model\n" * 1000)

    response = post(staff, source="upload", name=scratch.name("notes"), file=upload)

    assert response.status_code == 200
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert errors == [
        f"Could not add the model: {filename} is not a GGUF file (it does not start with the bytes 'GGUF')"
    ]
    assert not LLMModel.objects.filter(name=scratch.name("notes")).exists()
    assert not (scratch.dir / filename).exists()
    assert not part_files(scratch)


def test_upload_with_an_existing_name_needs_replace(staff: Client, scratch: Scratch, tmp_path: Path) -> None:
    name = scratch.name("dup")
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    write_tiny_gguf(first, context_length=100)
    digest2 = write_tiny_gguf(second, context_length=200)
    for f in (scratch.name("a.gguf"), scratch.name("b.gguf")):
        scratch.path(f)
    post(
        staff,
        source="upload",
        name=name,
        file=SimpleUploadedFile("a.gguf", first.read_bytes()),
        filename=scratch.name("a.gguf"),
    )

    refused = post(
        staff,
        source="upload",
        name=name,
        file=SimpleUploadedFile("b.gguf", second.read_bytes()),
        filename=scratch.name("b.gguf"),
    )
    assert any("already exists" in text and "replace" in text for _, text in messages_of(refused))
    assert not (scratch.dir / scratch.name("b.gguf")).exists() and not part_files(scratch)
    assert LLMModel.objects.get(name=name).file_path == scratch.name("a.gguf")

    post(
        staff,
        source="upload",
        name=name,
        replace="on",
        file=SimpleUploadedFile("b.gguf", second.read_bytes()),
        filename=scratch.name("b.gguf"),
    )
    model = LLMModel.objects.get(name=name)
    assert model.file_path == scratch.name("b.gguf") and model.sha256 == digest2 and model.available


def test_upload_may_not_escape_models_dir_or_take_another_models_file(
    staff: Client, scratch: Scratch, tmp_path: Path
) -> None:
    src = tmp_path / "tiny.gguf"
    write_tiny_gguf(src)
    escape = post(
        staff,
        source="upload",
        name=scratch.name("esc"),
        file=SimpleUploadedFile("x.gguf", src.read_bytes()),
        filename=f"../{scratch.name('esc.gguf')}",
    )
    assert any("not a valid file name inside MODELS_DIR" in text for _, text in messages_of(escape))
    taken = post(
        staff,
        source="upload",
        name=scratch.name("taken"),
        file=SimpleUploadedFile("x.gguf", src.read_bytes()),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    )
    assert any("already exists in MODELS_DIR" in text for _, text in messages_of(taken))
    assert not LLMModel.objects.filter(name__startswith=scratch.prefix).exists()
    assert not part_files(scratch)
    assert not (scratch.dir.parent / scratch.name("esc.gguf")).exists()


def test_form_errors_name_the_missing_input(staff: Client, scratch: Scratch) -> None:
    page = post(staff, source="upload", name=scratch.name("none")).content.decode()
    assert "Choose a GGUF file to upload." in page
    page = post(staff, source="hf", name=scratch.name("none"), hf_repo="").content.decode()
    assert "Enter a Hugging Face repository" in page and "Enter the GGUF file" in page
    page = post(staff, source="path", name="not a slug!", server_path="/x").content.decode()
    assert "Enter a valid" in page
    # An upload that arrived with an invalid form is not left behind in MODELS_DIR.
    tiny = scratch.dir / scratch.name("src") / "x.gguf"
    write_tiny_gguf(tiny)
    page = post(staff, source="upload", name="", file=SimpleUploadedFile("y.gguf", tiny.read_bytes())).content.decode()
    assert "This field is required." in page
    assert not part_files(scratch)
    assert not LLMModel.objects.exists()


# --- (b) server path -------------------------------------------------------------------------------


def test_server_path_outside_models_dir_is_copied_in(staff: Client, scratch: Scratch, tmp_path: Path) -> None:
    src = tmp_path / f"{scratch.name('outside')}.gguf"
    digest = write_tiny_gguf(src)
    scratch.path(src.name)

    response = post(staff, source="path", name=scratch.name("outside"), server_path=str(src))

    model = LLMModel.objects.get(name=scratch.name("outside"))
    assert model.available, messages_of(response)
    assert model.file_path == src.name and model.sha256 == digest
    assert (scratch.dir / src.name).read_bytes() == src.read_bytes()
    assert src.exists()  # a copy, the original stays
    assert not part_files(scratch)


def test_server_path_inside_models_dir_is_registered_in_place(staff: Client, scratch: Scratch) -> None:
    filename = scratch.name("sub") + "/inside.gguf"
    digest = write_tiny_gguf(scratch.path(filename))

    post(staff, source="path", name=scratch.name("inside"), server_path=str(scratch.dir / filename))

    model = LLMModel.objects.get(name=scratch.name("inside"))
    assert model.available and model.file_path == filename and model.sha256 == digest
    assert sorted(p.name for p in scratch.leftovers()) == ["inside.gguf"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("relative/model.gguf", "is not an absolute path"),
        ("/nonexistent/dir/model.gguf", "does not exist on the server"),
        ("/etc/hostname", "is not a GGUF file"),
        ("/etc", "is not a file"),
    ],
)
def test_bad_server_paths_are_refused_clearly(staff: Client, scratch: Scratch, path: str, expected: str) -> None:
    response = post(staff, source="path", name=scratch.name("bad"), server_path=path)
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) == 1 and expected in errors[0]
    assert not LLMModel.objects.exists()
    assert not scratch.leftovers()


def test_server_path_is_for_superusers_only(db: None, scratch: Scratch, tmp_path: Path) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    clerk = get_user_model().objects.create_user("clerk", "k@example.com", "a-long-enough-passphrase-9")
    clerk.is_staff = True
    clerk.save()
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["add_llmmodel", "view_llmmodel"]))
    client = Client()
    client.force_login(clerk)
    src = tmp_path / "m.gguf"
    write_tiny_gguf(src)
    response = post(client, source="path", name=scratch.name("clerk"), server_path=str(src))
    assert any("only superusers" in text for _, text in messages_of(response))
    assert not LLMModel.objects.exists()


# --- (c) Hugging Face ---------------------------------------------------------------------------------


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine has no internet; offline mode makes huggingface_hub fail at once
    # instead of after its network retries. The code under test is the same either way.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hf_add_creates_an_unavailable_row_and_a_job_and_enqueues_the_download(
    staff: Client, scratch: Scratch, django_capture_on_commit_callbacks: Any
) -> None:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="root")
    team = Team.objects.create(name="Ops", slug="ops")
    Membership.objects.create(user=admin, team=team, role=Role.OWNER)
    filename = scratch.name("remote.gguf")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(
            staff, source="hf", name=scratch.name("remote"), hf_repo="someone/some-model-GGUF", hf_filename=filename
        )

    model = LLMModel.objects.get(name=scratch.name("remote"))
    assert not model.available and "waiting for the download" in model.last_error
    assert (model.hf_repo, model.hf_filename, model.file_path) == ("someone/some-model-GGUF", filename, filename)
    job = Job.objects.get(kind="llm.model_download")
    assert job.team == team and job.params["model_id"] == model.pk and job.status == Job.Status.QUEUED
    assert len(callbacks) == 1
    info = [text for level, text in messages_of(response) if level == "info"]
    assert info and f"job #{job.pk}" in info[0]
    assert "Queued" in response.content.decode()  # the change page shows the download's state


def test_hf_download_without_network_fails_clearly_and_leaves_the_model_unavailable(
    staff: Client, scratch: Scratch, hf_offline: None
) -> None:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="root")
    team = Team.objects.create(name="Ops", slug="ops")
    Membership.objects.create(user=admin, team=team, role=Role.OWNER)
    filename = scratch.name("remote.gguf")
    model, job = model_add_from_hf(
        repo_id="someone/some-model-GGUF",
        filename=filename,
        name=scratch.name("remote"),
        kind=ModelKind.CHAT,
        context_length=None,
        replace=False,
        user=admin,
    )
    assert job is not None

    model = model_download_hf(model_id=model.pk, job_id=job.pk)

    assert not model.available
    assert "could not download someone/some-model-GGUF/" in model.last_error
    assert "cannot be reached" in model.last_error
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == model.last_error
    assert not (scratch.dir / filename).exists()
    page = staff.get(reverse("admin:taskmaster_llmmodel_change", args=[model.pk]))
    assert ("error", f"{model.name}: {model.last_error}") in messages_of(page)
    assert "Failed" in page.content.decode()


def test_hf_failure_keeps_a_replaced_model_serving_its_current_file(
    db: None, scratch: Scratch, hf_offline: None
) -> None:
    from tests.llm.test_registry import make_model

    model = make_model(scratch, "serving")
    old_path, old_hash = model.file_path, model.sha256
    model, job = model_add_from_hf(
        repo_id="someone/newer-GGUF",
        filename=scratch.name("newer.gguf"),
        name=model.name,
        kind=ModelKind.CHAT,
        context_length=None,
        replace=True,
        user=None,
    )
    assert job is None  # no admin team, no progress Job; the row carries the outcome

    model = model_download_hf(model_id=model.pk)

    assert model.available and (model.file_path, model.sha256) == (old_path, old_hash)
    assert model.last_error.startswith("last download failed: could not download someone/newer-GGUF/")


def test_hf_download_task_runs_on_the_jobs_worker(llm: Workers, scratch: Scratch) -> None:
    # An invalid repository id fails before any network access, so the real worker
    # answers quickly whatever its environment.
    model = LLMModel.objects.create(
        name=scratch.name("wired"),
        file_path=scratch.name("wired.gguf"),
        hf_repo="not a repo!!",
        hf_filename=scratch.name("wired.gguf"),
        last_error="waiting for the download",
    )
    team = Team.objects.create(name="Ops", slug="ops")
    job = Job.objects.create(team=team, kind="llm.model_download", title="wired", params={"model_id": model.pk})

    llm_model_download.delay(model.pk, job.pk)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            break
        time.sleep(0.2)
    assert job.status == Job.Status.FAILED
    model.refresh_from_db()
    assert not model.available
    assert model.last_error.startswith("invalid Hugging Face repository or file name 'not a repo!!/")
    assert job.error == model.last_error


def test_hf_add_refuses_a_file_name_that_escapes_models_dir(staff: Client, scratch: Scratch) -> None:
    response = post(staff, source="hf", name=scratch.name("esc"), hf_repo="a/b", hf_filename="../../etc/passwd")
    assert any("not a valid file name inside MODELS_DIR" in text for _, text in messages_of(response))
    assert not LLMModel.objects.exists() and not Job.objects.exists()


def test_uploaded_bytes_hash_matches(staff: Client, scratch: Scratch, tmp_path: Path) -> None:
    # A larger upload crosses several upload chunks (64 KiB): the streamed hash must still match.
    src = tmp_path / "big.gguf"
    write_tiny_gguf(src)
    with open(src, "ab") as fh:
        fh.write(bytes(range(256)) * 4096)  # 1 MiB of trailing data: the header checks still pass
    filename = scratch.name("big.gguf")
    scratch.path(filename)
    post(staff, source="upload", name=scratch.name("big"), file=SimpleUploadedFile(filename, src.read_bytes()))
    model = LLMModel.objects.get(name=scratch.name("big"))
    assert model.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert model.file_size == src.stat().st_size


def test_added_model_is_served_by_the_running_inference_worker(llm: Workers, scratch: Scratch) -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.llm import ModelFileError, generate

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "a-long-enough-passphrase-9")
    client = Client()
    client.force_login(admin)
    filename = scratch.name("unloadable.gguf")
    write_tiny_gguf(scratch.path(filename))  # a valid GGUF header, but no real model inside
    name = scratch.name("unloadable")

    response = post(client, source="path", name=name, server_path=str(scratch.dir / filename))

    info = [text for level, text in messages_of(response) if level == "info"]
    assert info and info[0].startswith(f"Queue llm.{name} is served by inference@")
    # The worker now takes requests for the new model; llama.cpp refuses this file and says so.
    with pytest.raises(ModelFileError, match=f"llama.cpp could not load {filename}"):
        generate([{"role": "user", "content": "Hi"}], model=name, max_tokens=4)
    model = LLMModel.objects.get(name=name)
    assert not model.available and "could not load" in model.last_error
    page = client.get(reverse(CHANGELIST)).content.decode()
    status = model.load_statuses.get()
    assert status.state == "error"
    assert f"<div>{status.worker}: <strong>error</strong>" in page
