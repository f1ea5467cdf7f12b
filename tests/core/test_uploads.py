"""Uploads are judged by their bytes, not by the name or type the browser sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from analytics.quality import services as quality
from analytics.quality.importers import ImportProblem
from planning.models import PRD, Tag, Task
from planning.services import project_create
from taskmaster.uploads import UploadRejected, sniff, upload_json_text, upload_text
from tests.conftest import Trio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(32)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(20)
TASKS = (Path(__file__).parent.parent / "planning" / "fixtures" / "tasks.json").read_bytes()


def _client(user: object) -> Client:
    c = Client()
    c.force_login(user)  # type: ignore[arg-type]
    return c


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"# PRD\n\nBuild it.\n", "text"),
        ("\ufeffkey,title\n1,é\n".encode(), "text"),
        (PNG, "a PNG image"),
        (PDF, "a PDF document"),
        (ZIP, "a ZIP archive (or a .docx/.xlsx document)"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"GGUF\x03\x00\x00\x00", "a GGUF model file"),
        (b"\x1f\x8b\x08\x00", "a gzip archive"),
        ("hello".encode("utf-16"), "UTF-16 text"),
        (b"abc\x00def", "binary data (it holds control characters)"),
        (b"caf\xe9", "binary data (not UTF-8 text)"),
    ],
)
def test_sniff_names_what_the_bytes_are(data: bytes, what: str) -> None:
    assert sniff(data) == what


def test_text_and_json_checks_name_the_file_and_the_expectation() -> None:
    assert upload_text(b"\xef\xbb\xbfplain", name="a.md", expected="text") == "plain"
    with pytest.raises(UploadRejected, match=r"^\['prd\.md is a PNG image; expected a PRD\. Nothing was saved\.'\]$"):
        upload_text(PNG, name="prd.md", expected="a PRD")
    assert upload_json_text(b'  {"a": 1}', name="t.json", expected="JSON") == '  {"a": 1}'
    with pytest.raises(UploadRejected, match=r"t\.json is not JSON \(it starts with 'key,title'\)"):
        upload_json_text(b"key,title\n1,A\n", name="t.json", expected="JSON")
    with pytest.raises(UploadRejected, match="it is empty"):
        upload_json_text(b"   ", name="t.json", expected="JSON")


def test_prd_upload_refuses_a_renamed_image_and_keeps_text(trio: Trio) -> None:
    project = project_create(team=trio.team, name="Invoicing")
    member = _client(trio.member)
    url = reverse("planning:prds", args=[project.pk])
    page = member.post(url, {"title": "Shot", "file": SimpleUploadedFile("prd.md", PNG, "text/markdown")})
    assert page.status_code == 400
    assert "prd.md is a PNG image; expected a Markdown or plain-text PRD. Nothing was saved." in page.content.decode()
    assert not PRD.objects.filter(project=project).exists()

    page = member.post(
        url, {"title": "Real", "file": SimpleUploadedFile("prd.txt", b"# Invoicing\n\nSend invoices.\n")}
    )
    assert page.status_code == 302
    assert "Send invoices." in PRD.objects.get(project=project).text


def test_tasks_json_import_checks_content_not_name(trio: Trio) -> None:
    project = project_create(team=trio.team, name="Invoicing")
    member = _client(trio.member)
    url = reverse("planning:transfer", args=[project.pk])
    before = Task.objects.filter(tag__project=project).count()

    page = member.post(url, {"file": SimpleUploadedFile("tasks.json", PDF, "application/json")})
    assert page.status_code == 400
    assert "tasks.json is a PDF document; expected a tasks.json" in page.content.decode()
    page = member.post(url, {"file": SimpleUploadedFile("tasks.json", b"title,status\nA,done\n")})
    assert page.status_code == 400
    assert "tasks.json is not JSON (it starts with &#x27;title,status&#x27;)" in page.content.decode()
    assert Task.objects.filter(tag__project=project).count() == before

    # A real tasks.json under a misleading name is still imported: the content decides.
    page = member.post(url, {"file": SimpleUploadedFile("export.txt", TASKS, "text/plain")})
    assert page.status_code == 302
    assert Task.objects.filter(tag__project=project).count() > before
    assert Tag.objects.filter(project=project).exists()


def test_quality_import_decides_json_or_csv_by_content(trio: Trio) -> None:
    suite = quality.suite_create(team=trio.team, name="Cx", kind="complexity", user=trio.owner)
    with pytest.raises(ImportProblem, match=r"^report\.json is a ZIP archive"):
        quality.suite_import_file(suite=suite, data=ZIP, name="report.json")
    with pytest.raises(ImportProblem, match=r"notes\.csv is neither JSON nor CSV text"):
        quality.suite_import_file(suite=suite, data=b"just a sentence\n", name="notes.csv")
    assert not suite.items.exists()

    # CSV content named .json, and JSON content named .csv, are both read for what they are.
    counts = quality.suite_import_file(suite=suite, data=b"key,title,text,expected_score\n1,A,Do A,4\n", name="x.json")
    assert counts == {"created": 1, "updated": 0}
    report = {"meta": {}, "complexityAnalysis": [{"taskId": 1, "taskTitle": "A", "complexityScore": 6}]}
    counts = quality.suite_import_file(suite=suite, data=json.dumps(report).encode(), name="x.csv")
    assert counts == {"created": 0, "updated": 1}
    assert suite.items.get(key="1").baseline["score"] == 6.0


def test_quality_import_page_shows_the_sniffed_type(trio: Trio) -> None:
    suite = quality.suite_create(team=trio.team, name="Cx", kind="complexity", user=trio.owner)
    page = _client(trio.member).post(
        reverse("analytics:quality:suite_import", args=[suite.pk]),
        {"file": SimpleUploadedFile("baseline.csv", PNG, "text/csv")},
        follow=True,
    )
    assert "Nothing was imported. baseline.csv is a PNG image; upload a .json or .csv file" in page.content.decode()
    assert not suite.items.exists()


def test_restore_reads_the_archive_not_its_name(tmp_path: Path) -> None:
    """``manage.py restore`` takes a file too: a renamed image or a foreign tar.gz is refused by content."""
    import io
    import tarfile

    from taskmaster.backup import BackupError, backup_verify

    fake = tmp_path / "taskmaster-backup-20260101-000000.tar.gz"
    fake.write_bytes(PNG)
    with pytest.raises(BackupError, match=r"is not a readable tar\.gz archive"):
        backup_verify(archive=fake, extract_to=tmp_path)

    foreign = tmp_path / "other.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(BackupError, match=r"is not a Task Master backup: it has no manifest\.json"):
        backup_verify(archive=foreign, extract_to=tmp_path)
