"""Writes of the research app: collections, sources, threads, feedback.

Ingestion itself (the Celery job's body) lives in research.ingest.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils.text import slugify

from research.extract import is_supported, unsupported_message
from research.models import Collection, Message, Source, Status, Thread
from taskmaster.models import Feedback, Job, LLMModel, Team
from taskmaster.services import feedback_record, job_create

INGEST_KIND = "research.ingest"


def _unique_slug(team: Team, name: str, exclude: int | None = None) -> str:
    base = slugify(name)[:50] or "collection"
    slug, n = base, 2
    qs = Collection.objects.filter(team=team)
    if exclude:
        qs = qs.exclude(pk=exclude)
    while qs.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _check_chunking(chunk_size: int, chunk_overlap: int) -> None:
    if not 20 <= chunk_size <= 300:
        raise ValidationError("Chunk size must be between 20 and 300 words.")
    if not 0 <= chunk_overlap <= chunk_size // 2:
        raise ValidationError("Chunk overlap must be between 0 and half the chunk size.")


def _check_embedding_model(model: LLMModel | None) -> None:
    if model is not None and model.kind != "embedding":
        raise ValidationError(f"{model.name} is not an embedding model.")


@transaction.atomic
def collection_create(
    *,
    team: Team,
    name: str,
    user: User | None = None,
    slug: str = "",
    description: str = "",
    embedding_model: LLMModel | None = None,
    chunk_size: int = 120,
    chunk_overlap: int = 20,
) -> Collection:
    name = name.strip()[:100]
    if not name:
        raise ValidationError("A collection needs a name.")
    _check_chunking(chunk_size, chunk_overlap)
    _check_embedding_model(embedding_model)
    if slug:
        slug = slugify(slug)[:60]
        if Collection.objects.filter(team=team, slug=slug).exists():
            raise ValidationError(f"Team {team.slug} already has a collection {slug!r}.")
    return Collection.objects.create(
        team=team,
        name=name,
        slug=slug or _unique_slug(team, name),
        description=description.strip()[:300],
        embedding_model=embedding_model,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        created_by=user,
    )


def collection_bump(*, collection_id: int) -> None:
    Collection.objects.filter(pk=collection_id).update(version=F("version") + 1)


@transaction.atomic
def collection_update(
    *,
    collection: Collection,
    user: User | None,
    name: str,
    description: str,
    embedding_model: LLMModel | None,
    chunk_size: int,
    chunk_overlap: int,
) -> Job | None:
    """Save settings; a new embedding model or chunking re-indexes every document."""
    _check_chunking(chunk_size, chunk_overlap)
    _check_embedding_model(embedding_model)
    collection = Collection.objects.select_for_update().get(pk=collection.pk)
    reindex = (
        collection.embedding_model_id != (embedding_model.pk if embedding_model else None)
        or collection.chunk_size != chunk_size
        or collection.chunk_overlap != chunk_overlap
    )
    collection.name = name.strip()[:100] or collection.name
    collection.description = description.strip()[:300]
    collection.embedding_model = embedding_model
    collection.chunk_size, collection.chunk_overlap = chunk_size, chunk_overlap
    collection.save()
    if not reindex:
        return None
    # Documents keep their chunks (still searchable) until each is re-indexed.
    collection.sources.exclude(status__in=[Status.DUPLICATE]).update(status=Status.PENDING, error="")
    collection.documents.update(embedded_with="")
    return ingest_start(collection=collection, user=user, reindex=True)


@transaction.atomic
def collection_delete(*, collection: Collection) -> None:
    for source in collection.sources.all():
        _delete_file(source)
    collection.delete()


def _check_size(size: int) -> None:
    if size > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"The file is {size / 1e6:.1f} MB; the limit is {settings.MAX_UPLOAD_BYTES / 1e6:.0f} MB."
        )


@transaction.atomic
def source_add_upload(*, collection: Collection, user: User | None, upload: UploadedFile) -> Source:
    """Store an uploaded file. An unsupported type is recorded as a failed source, never indexed."""
    name = Path(upload.name or "upload").name[:200]
    _check_size(upload.size or 0)
    if not is_supported(name):
        return Source.objects.create(
            collection=collection,
            kind=Source.Kind.UPLOAD,
            name=name,
            status=Status.FAILED,
            error=unsupported_message(name),
            created_by=user,
        )
    source = Source(collection=collection, kind=Source.Kind.UPLOAD, name=name, created_by=user)
    source.file.save(name, upload, save=False)
    source.save()
    return source


@transaction.atomic
def source_add_text(*, collection: Collection, user: User | None, title: str, text: str) -> Source:
    title, text = title.strip()[:200], text.strip()
    if not text:
        raise ValidationError("Paste some text to add.")
    _check_size(len(text.encode()))
    return Source.objects.create(
        collection=collection, kind=Source.Kind.TEXT, name=title or text[:60], text=text, created_by=user
    )


@transaction.atomic
def source_add_url(*, collection: Collection, user: User | None, url: str) -> Source:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValidationError("A URL starts with http:// or https://.")
    return Source.objects.create(collection=collection, kind=Source.Kind.URL, name=url[:200], url=url, created_by=user)


@transaction.atomic
def source_add_folder(*, collection: Collection, user: User, path: str) -> Source:
    """A folder on the server; site admins only, since it reads the server's disk."""
    if not user.is_superuser:
        raise ValidationError("Only site admins may index server folders.")
    folder = Path(path).expanduser()
    if not folder.is_absolute() or not folder.is_dir():
        raise ValidationError(f"{path} is not an absolute path to a folder on the server.")
    return Source.objects.create(
        collection=collection,
        kind=Source.Kind.FOLDER,
        name=folder.name or str(folder),
        path=str(folder),
        created_by=user,
    )


def _delete_file(source: Source) -> None:
    if source.file:
        name = source.file.name or ""
        storage = source.file.storage
        if name:
            transaction.on_commit(lambda: storage.delete(name))


@transaction.atomic
def source_delete(*, source: Source) -> None:
    """Delete a source with its documents and chunks (cascade), and invalidate cached answers."""
    had_documents = source.documents.exists()
    collection_id = source.collection_id
    _delete_file(source)
    source.delete()
    if had_documents:
        collection_bump(collection_id=collection_id)


@transaction.atomic
def ingest_start(
    *, collection: Collection, user: User | None, reindex: bool = False, source_ids: list[int] | None = None
) -> Job:
    """Create the ingestion job for a collection's pending sources and enqueue it after commit."""
    from research.tasks import ingest_collection

    job = job_create(
        team=collection.team,
        kind=INGEST_KIND,
        title=f"{'Re-index' if reindex else 'Index'} {collection.name}",
        created_by=user,
        params={"collection_id": collection.pk, "source_ids": source_ids or [], "reindex": reindex},
    )
    pending = collection.sources.filter(status__in=[Status.PENDING, Status.INDEXING])
    if source_ids:
        pending = pending.filter(pk__in=source_ids)
    pending.update(job=job)
    transaction.on_commit(lambda: ingest_collection.delay(job.pk))
    return job


# --- threads ---------------------------------------------------------------------------


@transaction.atomic
def thread_create(
    *, team: Team, owner: User, collections: list[Collection], title: str = "", shared: bool = False
) -> Thread:
    for collection in collections:
        if collection.team_id != team.pk:
            raise ValidationError("A thread can only use its own team's collections.")
    thread = Thread.objects.create(team=team, owner=owner, title=title.strip()[:200] or "New research", shared=shared)
    thread.collections.set(collections)
    return thread


@transaction.atomic
def thread_update(*, thread: Thread, title: str | None = None, shared: bool | None = None) -> Thread:
    if title is not None and title.strip():
        thread.title = title.strip()[:200]
    if shared is not None:
        thread.shared = shared
    thread.save()
    return thread


@transaction.atomic
def thread_set_collections(*, thread: Thread, collections: list[Collection]) -> None:
    if any(c.team_id != thread.team_id for c in collections):
        raise ValidationError("A thread can only use its own team's collections.")
    thread.collections.set(collections)


@transaction.atomic
def thread_delete(*, thread: Thread) -> None:
    thread.delete()


@transaction.atomic
def message_feedback(*, message: Message, user: User, rating: int, comment: str = "") -> Feedback:
    if message.role != Message.Role.ASSISTANT:
        raise ValidationError("Only answers can be rated.")
    return feedback_record(
        team=message.thread.team,
        user=user,
        feature="research.answer",
        target=f"research.message:{message.pk}",
        rating=rating,
        comment=comment,
        call_id=message.call_id or None,
    )
