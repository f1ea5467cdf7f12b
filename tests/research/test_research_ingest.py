"""Ingestion through the real Celery jobs worker and the real embedding model."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from research import services
from research.models import Chunk, Document, Source
from tests.conftest import Trio, Workers
from tests.research.files import HTML, MARKDOWN, TEXT, make_docx, make_pdf
from tests.research.helpers import upload, wait_job


@pytest.fixture
def collection(trio: Trio, llm: Workers):  # type: ignore[no-untyped-def]
    return services.collection_create(team=trio.team, name="Handbook", user=trio.owner, chunk_size=40, chunk_overlap=8)


def test_every_supported_type_is_indexed_with_progress_and_pages(collection) -> None:  # type: ignore[no-untyped-def]
    files = {
        "zephyr.md": MARKDOWN,
        "orion.txt": TEXT,
        "kestrel.html": HTML,
        "manual.pdf": make_pdf(["Lighthouses guide ships at night.", "Harbour tides rise twice a day."]),
        "plan.docx": make_docx("Quarterly plan", ["Ship the Falcon release in May."]),
    }
    sources, job = upload(collection, files)
    assert job.status == "succeeded", job.error
    assert job.done == job.total == 5
    assert "5 documents" in job.message and "chunks/s" in job.message
    assert job.result["added"] == 5 and job.result["failures"] == []
    assert all(s.status == "ready" for s in sources)
    docs = {d.doc_type: d for d in Document.objects.filter(collection=collection)}
    assert set(docs) == {"md", "txt", "html", "pdf", "docx"}
    assert all(d.status == "ready" and d.chunk_count > 0 and len(d.sha256) == 64 for d in docs.values())
    pdf_pages = sorted(Chunk.objects.filter(document=docs["pdf"]).values_list("page", flat=True))
    assert pdf_pages == [1, 2]
    chunk = Chunk.objects.filter(document=docs["md"]).first()
    assert chunk is not None and len(chunk.embedding) == 384 and chunk.search_vector
    collection.refresh_from_db()
    assert collection.version > 1


def test_duplicate_changed_and_deleted_content(collection) -> None:  # type: ignore[no-untyped-def]
    (md, txt), _ = upload(collection, {"zephyr.md": MARKDOWN, "orion.txt": TEXT})
    chunks_before = Chunk.objects.filter(collection=collection).count()
    orion = Document.objects.get(source=txt)

    # Identical content again, even under another name: nothing is added.
    (dup,), job = upload(collection, {"copy-of-zephyr.md": MARKDOWN})
    assert dup.status == "duplicate" and "nothing was added" in dup.error
    assert job.result["duplicates"] == 1
    assert Chunk.objects.filter(collection=collection).count() == chunks_before

    # Changed content in the same text source re-indexes only that document.
    md.refresh_from_db()
    Source.objects.filter(pk=txt.pk).update(status="pending")
    job = wait_job(services.ingest_start(collection=collection, user=None, source_ids=[txt.pk]))
    assert job.result["unchanged"] == 1 and job.result["added"] == 0

    # Deleting a source deletes its chunks and bumps the collection version.
    collection.refresh_from_db()
    version = collection.version
    services.source_delete(source=txt)
    assert not Chunk.objects.filter(document=orion).exists()
    assert not Document.objects.filter(pk=orion.pk).exists()
    collection.refresh_from_db()
    assert collection.version == version + 1


def test_changed_text_reindexes_only_that_document(collection) -> None:  # type: ignore[no-untyped-def]
    a = services.source_add_text(collection=collection, user=None, title="A", text="Alpha pumps move water uphill.")
    b = services.source_add_text(collection=collection, user=None, title="B", text="Beta valves stop the flow.")
    wait_job(services.ingest_start(collection=collection, user=None))
    doc_b = Document.objects.get(source=b)
    Source.objects.filter(pk=a.pk).update(text="Alpha pumps now move oil downhill.", status="pending")
    Source.objects.filter(pk=b.pk).update(status="pending")
    job = wait_job(services.ingest_start(collection=collection, user=None))
    assert job.result["updated"] == 1 and job.result["unchanged"] == 1
    assert Document.objects.get(pk=doc_b.pk).indexed_at == doc_b.indexed_at
    texts = list(Chunk.objects.filter(document__source=a).values_list("text", flat=True))
    assert texts == ["Alpha pumps now move oil downhill."]


def test_unsupported_type_fails_the_source_and_indexes_nothing(collection) -> None:  # type: ignore[no-untyped-def]
    source = services.source_add_upload(
        collection=collection,
        user=None,
        upload=__import__("django").core.files.uploadedfile.SimpleUploadedFile("diagram.png", b"\x89PNG\r\n"),
    )
    assert source.status == "failed"
    assert source.error.startswith("unsupported type: .png (supported: .md")
    assert not Document.objects.filter(collection=collection).exists()
    # A file that claims a supported type but is broken fails with its reason, nothing half-indexed.
    (broken,), job = upload(collection, {"broken.pdf": b"%PDF-1.4 garbage"})
    assert job.status == "succeeded"
    assert broken.status == "failed" and "PDF" in broken.error
    assert job.result["failures"] and "broken.pdf" in job.result["failures"][0]
    assert "1 failed" in job.message
    assert not Chunk.objects.filter(collection=collection).exists()


def test_embedding_model_change_reindexes(collection, trio: Trio) -> None:  # type: ignore[no-untyped-def]
    from taskmaster.models import LLMModel

    upload(collection, {"orion.txt": TEXT})
    emb = LLMModel.objects.get(kind="embedding")
    job = services.collection_update(
        collection=collection,
        user=trio.owner,
        name=collection.name,
        description="",
        embedding_model=emb,
        chunk_size=collection.chunk_size,
        chunk_overlap=collection.chunk_overlap,
    )
    assert job is not None
    job = wait_job(job)
    assert job.status == "succeeded" and job.result["updated"] == 1


def test_ingest_command_creates_the_collection_and_waits(trio: Trio, llm: Workers, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zephyr.md").write_bytes(MARKDOWN)
    (folder / "notes.xyz").write_bytes(b"whatever")
    single = tmp_path / "orion.txt"
    single.write_bytes(TEXT)
    call_command("ingest", str(folder), str(single), team="alpha", collection="kb")
    out = capsys.readouterr().out
    assert "Created collection kb" in out
    assert "2 added" in out and "1 failed" in out
    doc = Document.objects.get(key="notes.xyz")
    assert doc.status == "failed" and doc.error.startswith("unsupported type: .xyz")
    assert Document.objects.filter(collection__slug="kb", status="ready").count() == 2
