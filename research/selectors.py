"""Reads of the research app: the ``_for`` helpers and hybrid retrieval."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.http import Http404
from pgvector.django import CosineDistance

from research.extract import merge_overlap
from research.models import Chunk, Citation, Collection, Document, Message, Source, Thread
from taskmaster.access import AnyUser, Perm, get_scoped, is_site_admin, scoped
from taskmaster.llm import CallContext, embed
from taskmaster.llm.registry import model_for_role
from taskmaster.models import Job, Team

RRF_K = 60
# MiniLM cosine similarity: unrelated passages sit near 0.0-0.2, related ones above ~0.3.
MIN_SIMILARITY = 0.3
# A passage that also matches the words of the question is admitted at a lower bar.
MIN_SIMILARITY_WITH_TEXT_MATCH = 0.15


# --- objects for a user --------------------------------------------------------------


def collection_for(user: AnyUser, perm: Perm, **lookup: Any) -> Collection:
    return get_scoped(Collection.objects.select_related("team", "embedding_model"), user, perm, **lookup)


def collections_for(user: AnyUser, perm: Perm = Perm.VIEW, team: Team | None = None) -> QuerySet[Collection]:
    qs = scoped(Collection.objects.all(), user, perm)
    return qs.filter(team=team) if team is not None else qs


def source_for(user: AnyUser, perm: Perm, **lookup: Any) -> Source:
    return get_scoped(Source.objects.select_related("collection"), user, perm, "collection__team", **lookup)


def document_for(user: AnyUser, perm: Perm, **lookup: Any) -> Document:
    return get_scoped(Document.objects.select_related("collection"), user, perm, "collection__team", **lookup)


def _thread_visible(user: AnyUser) -> Q:
    if is_site_admin(user):
        return Q()
    return Q(owner=user) | Q(shared=True)


def thread_for(user: AnyUser, perm: Perm, **lookup: Any) -> Thread:
    """A thread its owner can use; teammates (view) only when it is shared; 404 otherwise.

    EDIT on a thread (asking, renaming, sharing) is the owner's alone.
    """
    qs = scoped(Thread.objects.select_related("team", "owner"), user, Perm.VIEW)
    qs = qs.filter(Q(owner=user) if perm != Perm.VIEW and not is_site_admin(user) else _thread_visible(user))
    try:
        return qs.get(**lookup)
    except Thread.DoesNotExist:
        raise Http404("No thread found") from None


def threads_for(user: AnyUser, team: Team | None) -> QuerySet[Thread]:
    if team is None or not user.is_authenticated:
        return Thread.objects.none()
    return (
        scoped(Thread.objects.filter(team=team), user, Perm.VIEW)
        .filter(Q(owner=user) | Q(shared=True))
        .select_related("owner")
    )


def message_for(user: AnyUser, perm: Perm, **lookup: Any) -> Message:
    message = get_scoped(Message.objects.select_related("thread"), user, Perm.VIEW, "thread__team", **lookup)
    thread_for(user, perm, pk=message.thread_id)
    return message


def citation_for(user: AnyUser, *, message_id: int, number: int) -> Citation:
    message = message_for(user, Perm.VIEW, pk=message_id)
    citation = Citation.objects.filter(message=message, number=number).select_related("chunk__document").first()
    if citation is None:
        raise Http404("No such citation")
    return citation


def thread_messages(thread: Thread) -> QuerySet[Message]:
    return thread.messages.prefetch_related("citations")


def collection_sources(collection: Collection) -> QuerySet[Source]:
    return collection.sources.prefetch_related("documents")


def collection_jobs(collection: Collection, limit: int = 3) -> list[Job]:
    return list(
        Job.objects.filter(
            team=collection.team_id, kind="research.ingest", params__collection_id=collection.pk
        ).order_by("-created_at")[:limit]
    )


def collection_stats(collection: Collection) -> dict[str, int]:
    return {
        "documents": collection.documents.filter(status="ready").count(),
        "chunks": collection.chunks.count(),
        "failed": collection.documents.filter(status="failed").count(),
    }


# --- retrieval -----------------------------------------------------------------------


@dataclass
class Hit:
    chunk_id: int
    document_id: int
    document_title: str
    collection_id: int
    position: int
    page: int | None
    heading: str
    text: str
    context: str = ""
    similarity: float = 0.0
    text_rank: float | None = None
    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def relevant(self) -> bool:
        if self.similarity >= MIN_SIMILARITY:
            return True
        return self.text_rank is not None and self.similarity >= MIN_SIMILARITY_WITH_TEXT_MATCH


def readable_collection_ids(user: AnyUser, ids: Iterable[int]) -> QuerySet[Collection]:
    return collections_for(user, Perm.VIEW).filter(pk__in=list(ids))


_iterative_scan: bool | None = None


def _supports_iterative_scan() -> bool:
    global _iterative_scan
    if _iterative_scan is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        version = tuple(int(p) for p in str(row[0] if row else "0").split(".")[:2] if p.isdigit())
        _iterative_scan = version >= (0, 8)
    return _iterative_scan


def _set_search_params(k: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(40, k * 4))])
        # Relaxed iterative scan (pgvector >= 0.8) keeps walking the HNSW graph until enough
        # rows pass the collection filter, so a small collection in a big table still gets
        # k rows. Older pgvector only has the wider ef_search above.
        if _supports_iterative_scan():
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")


def hybrid_search(
    *,
    user: AnyUser,
    query: str,
    collection_ids: Iterable[int],
    k: int = 5,
    window: int = 1,
    context: CallContext | None = None,
    query_vector: list[float] | None = None,
) -> list[Hit]:
    """Vector top-k and full-text top-k over the collections ``user`` may read, fused by RRF.

    The permission filter is part of the SQL (a sub-select on the user's memberships).
    ``query_vector`` is an embedding of ``query`` the caller already has (the benchmark's
    synthetic corpus); it then stands for every collection's model.
    """
    query = query.strip()[:2000]
    if not query:
        return []
    allowed = readable_collection_ids(user, collection_ids)
    by_model: dict[str, list[int]] = {}
    default_model: str | None = None
    for cid, model_name in allowed.values_list("pk", "embedding_model__name"):
        if model_name is None:
            default_model = default_model or model_for_role("embedding").name
            model_name = default_model
        by_model.setdefault(model_name, []).append(cid)
    if not by_model:
        return []
    ctx = context or CallContext(feature="research.search", user_id=getattr(user, "pk", None))
    vectors = {
        name: query_vector if query_vector is not None else embed(query, model=name, context=ctx)[0]
        for name in by_model
    }
    candidates = max(k * 3, 20)
    fused: dict[int, Hit] = {}
    with transaction.atomic():
        _set_search_params(candidates)
        for name, ids in by_model.items():
            # Collections are re-checked against the user inside the query itself.
            base = Chunk.objects.filter(collection__in=readable_collection_ids(user, ids))
            similar = (
                base.annotate(distance=CosineDistance("embedding", vectors[name]))
                .order_by("distance")
                .values_list("pk", "distance")[:candidates]
            )
            for rank, (pk, distance) in enumerate(similar, start=1):
                hit = fused.setdefault(pk, _empty_hit(pk))
                hit.similarity = 1.0 - float(distance)
                hit.ranks["vector"] = rank
                hit.score += 1.0 / (RRF_K + rank)
        tsquery = SearchQuery(query, search_type="websearch", config="english")
        matched = (
            Chunk.objects.filter(collection__in=allowed, search_vector=tsquery)
            .annotate(rank=SearchRank(F("search_vector"), tsquery, cover_density=True))
            .order_by("-rank")
            .values_list("pk", "rank")[:candidates]
        )
        for rank, (pk, text_rank) in enumerate(matched, start=1):
            hit = fused.setdefault(pk, _empty_hit(pk))
            hit.text_rank = float(text_rank)
            hit.ranks["text"] = rank
            hit.score += 1.0 / (RRF_K + rank)
    missing = [pk for pk, h in fused.items() if "vector" not in h.ranks]
    if missing:
        # Text-only hits still need a similarity for the relevance threshold.
        for pk, distance in _distances(missing, vectors, by_model):
            fused[pk].similarity = 1.0 - distance
    ranked = sorted(fused.values(), key=lambda h: h.score, reverse=True)[:k]
    _fill(ranked, window)
    return ranked


def _empty_hit(pk: int) -> Hit:
    return Hit(pk, 0, "", 0, 0, None, "", "")


def _distances(
    pks: list[int], vectors: dict[str, list[float]], by_model: dict[str, list[int]]
) -> list[tuple[int, float]]:
    rows: list[tuple[int, float]] = []
    for name, vector in vectors.items():
        qs = Chunk.objects.filter(pk__in=pks, collection_id__in=by_model[name])
        qs = qs.annotate(distance=CosineDistance("embedding", vector))
        rows.extend((pk, float(d)) for pk, d in qs.values_list("pk", "distance"))
    return rows


def _fill(hits: list[Hit], window: int) -> None:
    chunks = Chunk.objects.filter(pk__in=[h.chunk_id for h in hits]).select_related("document")
    by_pk = {c.pk: c for c in chunks}
    for hit in hits:
        c = by_pk[hit.chunk_id]
        hit.document_id, hit.document_title, hit.collection_id = c.document_id, c.document.title, c.collection_id
        hit.position, hit.page, hit.heading, hit.text = c.position, c.page, c.heading, c.text
        hit.context = c.text
    if window <= 0 or not hits:
        return
    wanted = Q()
    for hit in hits:
        wanted |= Q(
            document_id=hit.document_id, position__gte=hit.position - window, position__lte=hit.position + window
        )
    neighbours: dict[tuple[int, int], str] = {
        (d, p): t for d, p, t in Chunk.objects.filter(wanted).values_list("document_id", "position", "text")
    }
    for hit in hits:
        text = ""
        for pos in range(hit.position - window, hit.position + window + 1):
            piece = neighbours.get((hit.document_id, pos))
            if piece is not None:
                text = merge_overlap(text, piece) if text else piece
        hit.context = text or hit.text
