"""Ingestion embeds the chunks of several documents per embed() call (issue 4 item 9's throughput),
without changing what a document's indexing means: written whole, one by one, failures isolated."""

from __future__ import annotations

from typing import Any

import pytest

from research import ingest, services
from research.models import Chunk, Document, Source
from taskmaster.llm import LLMError
from taskmaster.llm.models import LLMCall
from taskmaster.models import Job
from taskmaster.services import job_create
from tests.conftest import Trio, Workers
from tests.research.helpers import add_texts


@pytest.fixture
def collection(trio: Trio, llm: Workers):  # type: ignore[no-untyped-def]
    return services.collection_create(team=trio.team, name="Batch", user=trio.owner, chunk_size=20, chunk_overlap=0)


def _text(n: int) -> str:
    # Three chunks of 20 words, different for every n.
    return "\n\n".join(" ".join(f"w{n}x{p}x{i}" for i in range(20)) for p in range(3))


def test_chunks_of_many_documents_share_embed_calls(collection, trio: Trio) -> None:  # type: ignore[no-untyped-def]
    texts = {f"Doc {n}": _text(n) for n in range(4)}
    texts["Twin"] = texts["Doc 3"]  # identical content while Doc 3 waits in the batch: still indexed once
    texts.update({f"Doc {n}": _text(n) for n in range(4, 12)})
    job = add_texts(collection, texts)
    assert job.status == "succeeded", job.error
    assert job.done == job.total == 13
    assert job.result["added"] == 12 and job.result["duplicates"] == 1 and job.result["failures"] == []
    assert job.result["chunks"] == 36
    docs = Document.objects.filter(collection=collection, status="ready")
    assert docs.count() == 12 and all(d.chunk_count == 3 for d in docs)
    assert Chunk.objects.filter(collection=collection).count() == 36
    assert Source.objects.get(collection=collection, name="Twin").status == "duplicate"
    assert set(Source.objects.filter(collection=collection).exclude(name="Twin").values_list("status", flat=True)) == {
        "ready"
    }
    # Two calls for 12 documents (the twin flushes the first batch early), not one per document.
    assert LLMCall.objects.filter(feature="research.ingest", team=trio.team).count() == 2


def test_a_failing_batch_is_retried_per_document_to_isolate_the_bad_one(  # type: ignore[no-untyped-def]
    collection, trio: Trio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inference worker refusing one text is the fault injected; every other call is real.
    real_embed = ingest.embed

    def refusing_embed(texts: list[str], **kwargs: Any) -> list[list[float]]:
        if any("poison" in t for t in texts):
            raise LLMError("the model refused this text")
        return real_embed(texts, **kwargs)

    monkeypatch.setattr(ingest, "embed", refusing_embed)
    ids = [
        services.source_add_text(collection=collection, user=None, title=f"Doc {n}", text=_text(n)).pk for n in range(4)
    ]
    bad = services.source_add_text(collection=collection, user=None, title="Bad", text="a poison chunk " * 5)
    ids.insert(2, bad.pk)
    # Run the job body here (not in the jobs worker) so the refusal above applies to it.
    job = job_create(
        team=trio.team,
        kind=services.INGEST_KIND,
        title="Index",
        params={"collection_id": collection.pk, "source_ids": ids},
    )
    ingest.ingest_run(job_id=job.pk)
    job = Job.objects.get(pk=job.pk)
    assert job.status == "succeeded", job.error
    assert job.done == job.total == 5
    assert job.result["added"] == 4 and job.result["chunks"] == 12
    assert len(job.result["failures"]) == 1 and "Bad: the model refused this text" in job.result["failures"][0]
    bad.refresh_from_db()
    assert bad.status == "failed" and "refused" in bad.error
    assert Document.objects.get(source=bad).status == "failed"
    assert not Chunk.objects.filter(document__source=bad).exists()
    assert Document.objects.filter(collection=collection, status="ready", chunk_count=3).count() == 4
    # A worker killed after writing leaves its sources "indexing"; the next run adds nothing twice.
    good = [i for i in ids if i != bad.pk]
    Source.objects.filter(pk__in=good).update(status="indexing")
    again = job_create(
        team=trio.team,
        kind=services.INGEST_KIND,
        title="Again",
        params={"collection_id": collection.pk, "source_ids": good},
    )
    ingest.ingest_run(job_id=again.pk)
    again.refresh_from_db()
    assert again.result["unchanged"] == 4 and again.result["chunks"] == 0
    assert Chunk.objects.filter(collection=collection).count() == 12


def test_progress_is_reported_per_document_while_batching(collection, trio: Trio, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, int]] = []
    real_progress = ingest.job_progress

    def recording_progress(**kwargs: Any) -> None:
        seen.append((kwargs["done"], kwargs["total"]))
        real_progress(**kwargs)

    monkeypatch.setattr(ingest, "job_progress", recording_progress)
    ids = [
        services.source_add_text(collection=collection, user=None, title=f"Doc {n}", text=_text(n)).pk
        for n in range(15)
    ]
    job = job_create(
        team=trio.team,
        kind=services.INGEST_KIND,
        title="Index",
        params={"collection_id": collection.pk, "source_ids": ids},
    )
    ingest.ingest_run(job_id=job.pk)
    assert [done for done, _ in seen] == list(range(1, 16))
    assert {total for _, total in seen} == {15}
    job = Job.objects.get(pk=job.pk)
    assert job.status == "succeeded" and job.result["chunks"] == 45 and job.message.startswith("15 documents: 15 added")
