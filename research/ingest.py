"""The ingestion job: sources → documents → chunks with embeddings.

Idempotent and resumable: a document whose content (sha256) and embedding model are
unchanged is skipped, so a re-delivered or re-run job only finishes what is missing.
Embeddings are computed first, in batches shared by several documents; each document's
chunks are then swapped in within its own transaction, so search sees either the old
version or the whole new one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx
from django.contrib.postgres.search import SearchVector
from django.db import transaction
from django.db.models import Value
from django.utils import timezone

from research.extract import (
    ChunkData,
    Extracted,
    ExtractionError,
    chunk_sections,
    extract,
    is_supported,
    unsupported_message,
)
from research.models import EMBEDDING_DIMENSIONS, Chunk, Collection, Document, Source, Status
from research.services import collection_bump
from taskmaster.llm import CallContext, LLMError, embed
from taskmaster.llm.registry import model_for_role
from taskmaster.models import Job
from taskmaster.services import job_fail, job_progress, job_start, job_succeed

log = logging.getLogger(__name__)

# A batch is embedded once it holds EMBED_BATCH chunks (from one or several documents);
# one embed() call carries at most EMBED_MAX of them.
EMBED_BATCH = 32
EMBED_MAX = 64
URL_MAX_BYTES = 10 * 1024 * 1024


@dataclass
class RawDocument:
    key: str
    name: str
    data: bytes


@dataclass
class Progress:
    job_id: int
    total: int = 0
    done: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.chunks / elapsed if elapsed > 0 else 0.0

    def message(self) -> str:
        text = f"{self.done}/{self.total} documents · {self.chunks} chunks · {self.rate():.1f} chunks/s"
        if self.failures:
            text += f" · {len(self.failures)} failed: " + "; ".join(self.failures)
        return text

    def report(self) -> None:
        job_progress(job_id=self.job_id, done=self.done, total=self.total, message=self.message())

    def result(self) -> dict[str, object]:
        return {
            "documents": self.total,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "chunks": self.chunks,
            "chunks_per_s": round(self.rate(), 1),
            "failures": self.failures,
        }


# What a fetched page may be, by Content-Type; anything else is refused before its body is read.
URL_TYPES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


def _url_suffix(url: str, content_type: str) -> str:
    if content_type in URL_TYPES:
        return URL_TYPES[content_type]
    # A server that does not say (or says "binary"): trust a supported extension in the URL.
    path_suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if content_type in {"", "application/octet-stream"} and is_supported(f"page{path_suffix}"):
        return path_suffix
    raise ExtractionError(
        f"unsupported type: {content_type or 'no Content-Type'} at {url} "
        "(supported: HTML, plain text, Markdown, PDF and DOCX pages)"
    )


def _fetch_url(url: str) -> RawDocument:
    try:
        with httpx.stream("GET", url, timeout=20, follow_redirects=True) as response:
            if response.is_error:
                raise ExtractionError(
                    f"could not fetch {url}: the server answered {response.status_code} {response.reason_phrase}"
                )
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            suffix = _url_suffix(str(response.url), ctype)
            body = b""
            for part in response.iter_bytes():
                body += part
                if len(body) > URL_MAX_BYTES:
                    raise ExtractionError(f"{url} is larger than {URL_MAX_BYTES // 1_000_000} MB")
    except httpx.HTTPError as exc:
        raise ExtractionError(f"could not fetch {url}: {exc}") from None
    return RawDocument(key=url, name=f"page{suffix}", data=body)


def _raw_documents(source: Source) -> list[RawDocument]:
    if source.kind == Source.Kind.UPLOAD:
        if not source.file:
            raise ExtractionError(source.error or "the uploaded file is missing")
        with source.file.open("rb") as fh:
            return [RawDocument(key=source.name, name=source.name, data=fh.read())]
    if source.kind == Source.Kind.TEXT:
        return [RawDocument(key="text", name=f"{source.name}.md", data=source.text.encode())]
    if source.kind == Source.Kind.URL:
        return [_fetch_url(source.url)]
    folder = Path(source.path)
    if not folder.is_dir():
        raise ExtractionError(f"folder {folder} does not exist on the server")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [RawDocument(key=str(p.relative_to(folder)), name=p.name, data=p.read_bytes()) for p in files]


def _embed_all(texts: list[str], model_name: str, collection: Collection) -> list[list[float]]:
    """Vectors for texts, in as few calls of at most EMBED_MAX as possible, split evenly."""
    ctx = CallContext(feature="research.ingest", team_id=collection.team_id)
    vectors: list[list[float]] = []
    calls = -(-len(texts) // EMBED_MAX)
    for i in range(calls):
        part = texts[len(texts) * i // calls : len(texts) * (i + 1) // calls]
        vectors.extend(embed(part, model=model_name, context=ctx))
    if vectors and len(vectors[0]) != EMBEDDING_DIMENSIONS:
        raise LLMError(
            f"{model_name} returns {len(vectors[0])}-dimensional vectors; collections store {EMBEDDING_DIMENSIONS}"
        )
    return vectors


@dataclass
class _SourceRun:
    """One source's documents while they pass through the job, some of them waiting in a batch."""

    source: Source
    documents: int
    waiting: int = 0
    listed: bool = False
    failed: list[str] = field(default_factory=list)
    duplicates: int = 0

    def finish(self) -> None:
        if not self.listed or self.waiting:
            return
        if self.failed and len(self.failed) == self.documents:
            status, error = Status.FAILED, "; ".join(self.failed)
        elif self.documents and self.duplicates == self.documents:
            status, error = Status.DUPLICATE, "identical content is already in this collection; nothing was added"
        else:
            status, error = Status.READY, "; ".join(self.failed)
        Source.objects.filter(pk=self.source.pk).update(status=status, error=error[:4000])


@dataclass
class _Prepared:
    run: _SourceRun
    raw: RawDocument
    sha: str
    extracted: Extracted
    pieces: list[ChunkData]


class _Ingestion:
    """Extracts documents one by one but embeds their chunks in shared batches.

    One embed() call per document (a few chunks each) spends most of its time on the
    round trip to the inference worker; batching across documents is what lets the job
    keep up with direct embedding. Each document is still written in its own
    transaction once its vectors are in, so the visibility and resume rules are unchanged.
    """

    def __init__(self, collection: Collection, model_name: str, progress: Progress) -> None:
        self.collection = collection
        self.model_name = model_name
        self.progress = progress
        self.batch: list[_Prepared] = []
        self.batch_chunks = 0

    def source(self, source: Source) -> None:
        Source.objects.filter(pk=source.pk).update(status=Status.INDEXING, error="")
        try:
            raws = _raw_documents(source)
        except (ExtractionError, OSError) as exc:
            Source.objects.filter(pk=source.pk).update(status=Status.FAILED, error=str(exc))
            self.progress.failures.append(f"{source.name}: {exc}")
            self.progress.done += 1
            self.progress.report()
            return
        self.progress.total += len(raws) - 1
        if source.kind == Source.Kind.FOLDER:
            keys = {r.key[:500] for r in raws}
            gone = Document.objects.filter(source=source).exclude(key__in=keys)
            if gone.exists():
                gone.delete()
                collection_bump(collection_id=self.collection.pk)
        run = _SourceRun(source=source, documents=len(raws))
        for raw in raws:
            try:
                prepared = self._prepare(run, raw)
            except (ExtractionError, LLMError) as exc:
                self._failed(run, raw, exc)
                continue
            if prepared is None:
                self._done(run)
                continue
            run.waiting += 1
            self.batch.append(prepared)
            self.batch_chunks += len(prepared.pieces)
            if self.batch_chunks >= EMBED_BATCH:
                self.flush()
        run.listed = True
        run.finish()

    def _prepare(self, run: _SourceRun, raw: RawDocument) -> _Prepared | None:
        """Extract and chunk a document, or None when there is nothing to index (unchanged, duplicate)."""
        source, collection = run.source, self.collection
        sha = hashlib.sha256(raw.data).hexdigest()
        existing = Document.objects.filter(source=source, key=raw.key[:500]).first()
        if (
            existing
            and existing.sha256 == sha
            and existing.status == Status.READY
            and existing.embedded_with == self.model_name
        ):
            self.progress.unchanged += 1
            return None
        if any(p.sha == sha for p in self.batch):
            # Its twin is waiting in this batch: write that first so the duplicate check below sees it.
            self.flush()
        twin = (
            Document.objects.filter(collection=collection, sha256=sha, status=Status.READY)
            .exclude(source=source, key=raw.key[:500])
            .first()
        )
        if twin is not None:
            # Identical content is already searchable: index nothing twice.
            self.progress.duplicates += 1
            run.duplicates += 1
            if existing is not None:
                existing.delete()
                collection_bump(collection_id=collection.pk)
            return None
        if not is_supported(raw.name):
            raise ExtractionError(unsupported_message(raw.name))
        extracted = extract(raw.name, raw.data)
        pieces = chunk_sections(extracted.sections, size=collection.chunk_size, overlap=collection.chunk_overlap)
        return _Prepared(run=run, raw=raw, sha=sha, extracted=extracted, pieces=pieces)

    def flush(self) -> None:
        batch, self.batch, self.batch_chunks = self.batch, [], 0
        if not batch:
            return
        texts = [p.text for item in batch for p in item.pieces]
        try:
            vectors = _embed_all(texts, self.model_name, self.collection)
        except LLMError as exc:
            if len(batch) == 1:
                self._failed_waiting(batch[0], exc)
                return
            # Find the document that broke the batch; the others are indexed as usual.
            log.warning("batch embedding of %s documents failed; embedding them one by one", len(batch))
            for item in batch:
                try:
                    item_vectors = _embed_all([p.text for p in item.pieces], self.model_name, self.collection)
                except LLMError as exc:
                    self._failed_waiting(item, exc)
                else:
                    self._write(item, item_vectors)
            return
        offset = 0
        for item in batch:
            self._write(item, vectors[offset : offset + len(item.pieces)])
            offset += len(item.pieces)

    def _write(self, item: _Prepared, vectors: list[list[float]]) -> None:
        """Swap the document's chunks in within one transaction: search sees all of it or none."""
        source, collection, raw, extracted, pieces = (
            item.run.source,
            self.collection,
            item.raw,
            item.extracted,
            item.pieces,
        )
        with transaction.atomic():
            document, created = Document.objects.select_for_update().get_or_create(
                source=source,
                key=raw.key[:500],
                defaults={
                    "collection": collection,
                    "title": extracted.title,
                    "doc_type": extracted.doc_type,
                    "sha256": item.sha,
                },
            )
            document.chunks.all().delete()
            Chunk.objects.bulk_create(
                Chunk(
                    document=document,
                    collection=collection,
                    position=p.position,
                    text=p.text,
                    token_count=p.token_count,
                    page=p.page,
                    heading=p.heading,
                    embedding=v,
                )
                for p, v in zip(pieces, vectors, strict=True)
            )
            Chunk.objects.filter(document=document).update(
                search_vector=SearchVector(Value(extracted.title), weight="A", config="english")
                + SearchVector("heading", weight="B", config="english")
                + SearchVector("text", weight="C", config="english")
            )
            document.title, document.doc_type, document.sha256 = extracted.title, extracted.doc_type, item.sha
            document.status, document.error, document.chunk_count = Status.READY, "", len(pieces)
            document.embedded_with, document.indexed_at = self.model_name, timezone.now()
            document.save()
            collection_bump(collection_id=collection.pk)
        self.progress.chunks += len(pieces)
        if created:
            self.progress.added += 1
        else:
            self.progress.updated += 1
        item.run.waiting -= 1
        self._done(item.run)

    def _failed_waiting(self, item: _Prepared, exc: LLMError) -> None:
        item.run.waiting -= 1
        self._failed(item.run, item.raw, exc)

    def _failed(self, run: _SourceRun, raw: RawDocument, exc: Exception) -> None:
        source = run.source
        _fail_document(source, self.collection, raw, str(exc))
        run.failed.append(f"{raw.key}: {exc}")
        self.progress.failures.append(f"{raw.key if source.kind == Source.Kind.FOLDER else source.name}: {exc}")
        self._done(run)

    def _done(self, run: _SourceRun) -> None:
        self.progress.done += 1
        self.progress.report()
        run.finish()


def _fail_document(source: Source, collection: Collection, raw: RawDocument, reason: str) -> None:
    sha = hashlib.sha256(raw.data).hexdigest()
    with transaction.atomic():
        document, _ = Document.objects.update_or_create(
            source=source,
            key=raw.key[:500],
            defaults={
                "collection": collection,
                "title": raw.name[:300],
                "doc_type": Path(raw.name).suffix.lstrip(".")[:10],
                "sha256": sha,
                "status": Status.FAILED,
                "error": reason[:2000],
                "chunk_count": 0,
            },
        )
        # A failed document is not searchable at all, not even its previous version.
        if document.chunks.exists():
            document.chunks.all().delete()
            collection_bump(collection_id=collection.pk)


def ingest_run(*, job_id: int) -> None:
    """Body of the ingestion job. Safe to run again for the same job."""
    job = Job.objects.get(pk=job_id)
    if job.finished:
        return
    collection = Collection.objects.filter(pk=job.params.get("collection_id")).first()
    if collection is None:
        job_fail(job_id=job_id, error="The collection was deleted before indexing started.")
        return
    sources = collection.sources.filter(status__in=[Status.PENDING, Status.INDEXING]).order_by("pk")
    if job.params.get("source_ids"):
        sources = sources.filter(pk__in=job.params["source_ids"])
    source_list = list(sources)
    progress = Progress(job_id=job_id, total=len(source_list))
    job_start(job_id=job_id, total=progress.total, message=progress.message())
    try:
        model = collection.embedding_model or model_for_role("embedding")
        ingestion = _Ingestion(collection, model.name, progress)
        for source in source_list:
            ingestion.source(source)
        ingestion.flush()
    except LLMError as exc:
        job_fail(job_id=job_id, error=f"Embedding failed: {exc}", result=progress.result())
        return
    except Exception as exc:
        log.exception("ingestion job %s crashed", job_id)
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}", result=progress.result())
        raise
    summary = (
        f"{progress.total} documents: {progress.added} added, {progress.updated} re-indexed, "
        f"{progress.unchanged} unchanged, {progress.duplicates} duplicates, {len(progress.failures)} failed · "
        f"{progress.chunks} chunks at {progress.rate():.1f} chunks/s"
    )
    if progress.failures:
        summary += " · failures: " + "; ".join(progress.failures)
    job_succeed(
        job_id=job_id, result=progress.result(), message=summary, revision_ref=f"research.collection:{collection.pk}"
    )
