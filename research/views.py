"""Research pages: threads (the chat), collections and their sources, search, citations, feedback."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from research import answer as A
from research import services
from research.models import Collection, Message, Source
from research.selectors import (
    citation_for,
    collection_for,
    collection_jobs,
    collection_sources,
    collection_stats,
    collections_for,
    document_for,
    hybrid_search,
    message_for,
    source_for,
    thread_for,
    thread_messages,
    threads_for,
)
from taskmaster.access import Perm, can
from taskmaster.llm import LLMError
from taskmaster.markdown import render_markdown
from taskmaster.models import LLMModel

MODES = [
    ("answer", "Answer"),
    ("quick", "Quick research (depth 1)"),
    ("balanced", "Balanced research (depth 2)"),
    ("deep", "Deep research (depth 3)"),
]


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _ids(request: HttpRequest, name: str = "collections") -> list[int]:
    return [int(v) for v in request.POST.getlist(name) or request.GET.getlist(name) if v.isdigit()]


# --- threads -------------------------------------------------------------------------


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    return render(
        request,
        "research/index.html",
        {
            "threads": threads_for(request.user, team),
            "collections": collections_for(request.user, Perm.VIEW, team=team) if team else [],
        },
    )


@login_required
@require_POST
def thread_create(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    if team is None:
        raise Http404("You are not in a team")
    collections = list(collections_for(request.user, Perm.VIEW, team=team).filter(pk__in=_ids(request)))
    thread = services.thread_create(
        team=team,
        owner=request.user,  # type: ignore[arg-type]
        collections=collections,
        title=request.POST.get("title", ""),
        shared=request.POST.get("shared") == "on",
    )
    return redirect("research:thread", pk=thread.pk)


def _message_html(message: Message) -> str:
    text = A.link_citations(message.content, message.pk, len(message.citations.all()))
    return mark_safe(render_markdown(text))  # noqa: S308 - sanitised by nh3 in render_markdown


@login_required
@require_GET
def thread_detail(request: HttpRequest, pk: int) -> HttpResponse:
    thread = thread_for(request.user, Perm.VIEW, pk=pk)
    items = [(m, _message_html(m) if m.role == Message.Role.ASSISTANT else "") for m in thread_messages(thread)]
    selected = set(thread.collections.values_list("pk", flat=True))
    return render(
        request,
        "research/thread.html",
        {
            "thread": thread,
            "items": items,
            "is_owner": thread.owner_id == request.user.pk,
            "collections": collections_for(request.user, Perm.VIEW, team=thread.team),
            "selected": selected,
            "modes": MODES,
        },
    )


@login_required
@require_POST
def thread_update(request: HttpRequest, pk: int) -> HttpResponse:
    thread = thread_for(request.user, Perm.EDIT, pk=pk)
    services.thread_update(thread=thread, title=request.POST.get("title"), shared=request.POST.get("shared") == "on")
    messages.success(request, "Thread saved.")
    return redirect("research:thread", pk=thread.pk)


@login_required
@require_POST
def thread_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.thread_delete(thread=thread_for(request.user, Perm.EDIT, pk=pk))
    messages.success(request, "Thread deleted.")
    return redirect("research:index")


@login_required
@require_GET
def citation(request: HttpRequest, message_id: int, number: int) -> HttpResponse:
    cite = citation_for(request.user, message_id=message_id, number=number)
    template = "research/_source_panel.html" if request.htmx else "research/source.html"  # type: ignore[attr-defined]
    return render(request, template, {"citation": cite, "message_id": message_id})


@login_required
@require_GET
def document(request: HttpRequest, pk: int) -> HttpResponse:
    """A document's passages, each with an anchor: where API citations (``research`` models) link to."""
    doc = document_for(request.user, Perm.VIEW, pk=pk)
    return render(
        request,
        "research/document.html",
        {"document": doc, "source": doc.source, "chunks": doc.chunks.order_by("position")},
    )


@login_required
@require_POST
def feedback(request: HttpRequest, message_id: int) -> HttpResponse:
    message = message_for(request.user, Perm.VIEW, pk=message_id)
    try:
        rating = int(request.POST.get("rating", "0"))
        services.message_feedback(
            message=message,
            user=request.user,  # type: ignore[arg-type]
            rating=rating,
            comment=request.POST.get("comment", ""),
        )
    except (ValueError, ValidationError) as exc:
        text = _error_text(exc) if isinstance(exc, ValidationError) else "A rating is +1 or -1."
        return render(request, "research/_feedback.html", {"message": message, "error": text}, status=400)
    return render(request, "research/_feedback.html", {"message": message, "saved": rating})


# --- collections ---------------------------------------------------------------------


def _embedding_models() -> Any:
    return LLMModel.objects.filter(kind="embedding", enabled=True)


@login_required
def collections(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    if request.method == "POST":
        if team is None or not can(request.user, team, Perm.EDIT):
            raise Http404("No team you may edit")
        try:
            collection = services.collection_create(
                team=team,
                user=request.user,  # type: ignore[arg-type]
                name=request.POST.get("name", ""),
                description=request.POST.get("description", ""),
            )
        except ValidationError as exc:
            messages.error(request, _error_text(exc))
            return redirect("research:collections")
        return redirect("research:collection", pk=collection.pk)
    items = collections_for(request.user, Perm.VIEW, team=team) if team else Collection.objects.none()
    can_edit = team is not None and can(request.user, team, Perm.EDIT)
    return render(request, "research/collections.html", {"collections": items, "can_edit": can_edit})


def _collection_context(request: HttpRequest, collection: Collection) -> dict[str, Any]:
    return {
        "collection": collection,
        "sources": collection_sources(collection),
        "jobs": collection_jobs(collection),
        "stats": collection_stats(collection),
        "can_edit": can(request.user, collection.team, Perm.EDIT),
        "can_manage": can(request.user, collection.team, Perm.MANAGE),
        "embedding_models": _embedding_models(),
        "is_admin": bool(getattr(request.user, "is_superuser", False)),
    }


@login_required
@require_GET
def collection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.VIEW, pk=pk)
    return render(request, "research/collection.html", _collection_context(request, collection))


@login_required
@require_GET
def collection_sources_partial(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.VIEW, pk=pk)
    return render(request, "research/_sources.html", _collection_context(request, collection))


@login_required
@require_POST
def collection_settings(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.MANAGE, pk=pk)
    model_id = request.POST.get("embedding_model", "")
    model = _embedding_models().filter(pk=int(model_id)).first() if model_id.isdigit() else None
    try:
        job = services.collection_update(
            collection=collection,
            user=request.user,  # type: ignore[arg-type]
            name=request.POST.get("name", collection.name),
            description=request.POST.get("description", ""),
            embedding_model=model,
            chunk_size=int(request.POST.get("chunk_size", collection.chunk_size)),
            chunk_overlap=int(request.POST.get("chunk_overlap", collection.chunk_overlap)),
        )
    except ValueError:
        messages.error(request, "Chunk size and overlap are whole numbers of words.")
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Settings saved." + (" Re-indexing every document." if job else ""))
    return redirect("research:collection", pk=collection.pk)


@login_required
@require_POST
def collection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.MANAGE, pk=pk)
    services.collection_delete(collection=collection)
    messages.success(request, f"Deleted collection {collection.name}.")
    return redirect("research:collections")


@login_required
@require_POST
def source_add(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.EDIT, pk=pk)
    user = request.user
    assert isinstance(user, User)
    kind = request.POST.get("kind", "upload")
    added: list[Source] = []
    try:
        if kind == "upload":
            files = request.FILES.getlist("files")
            if not files:
                raise ValidationError("Choose at least one file to upload.")
            added = [services.source_add_upload(collection=collection, user=user, upload=f) for f in files]  # type: ignore[arg-type]
        elif kind == "text":
            added = [
                services.source_add_text(
                    collection=collection,
                    user=user,
                    title=request.POST.get("title", ""),
                    text=request.POST.get("text", ""),  # type: ignore[arg-type]
                )
            ]
        elif kind == "url":
            added = [services.source_add_url(collection=collection, user=user, url=request.POST.get("url", ""))]  # type: ignore[arg-type]
        elif kind == "folder":
            added = [services.source_add_folder(collection=collection, user=user, path=request.POST.get("path", ""))]  # type: ignore[arg-type]
        else:
            return HttpResponseBadRequest(f"Unknown source kind {kind!r}.")
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("research:collection", pk=collection.pk)
    for source in added:
        if source.status == "failed":
            messages.error(request, f"{source.name}: {source.error}")
    pending = [s.pk for s in added if s.status == "pending"]
    if pending:
        services.ingest_start(collection=collection, user=user, source_ids=pending)  # type: ignore[arg-type]
        messages.success(request, f"Indexing {len(pending)} source(s).")
    return redirect("research:collection", pk=collection.pk)


@login_required
@require_POST
def collection_reindex(request: HttpRequest, pk: int) -> HttpResponse:
    collection = collection_for(request.user, Perm.EDIT, pk=pk)
    collection.sources.filter(status="failed").exclude(error__startswith="unsupported type").update(status="pending")
    services.ingest_start(collection=collection, user=request.user)  # type: ignore[arg-type]
    messages.success(request, "Indexing pending sources.")
    return redirect("research:collection", pk=collection.pk)


@login_required
@require_POST
def source_delete(request: HttpRequest, pk: int) -> HttpResponse:
    source = source_for(request.user, Perm.EDIT, pk=pk)
    collection_id = source.collection_id
    services.source_delete(source=source)
    messages.success(request, f"Deleted {source.name} and its passages.")
    return redirect("research:collection", pk=collection_id)


# --- search only -----------------------------------------------------------------------


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    team = request.team  # type: ignore[attr-defined]
    query = request.GET.get("q", "").strip()
    visible = collections_for(request.user, Perm.VIEW, team=team) if team else Collection.objects.none()
    chosen = _ids(request) or list(visible.values_list("pk", flat=True))
    hits, error = [], ""
    if query:
        try:
            hits = hybrid_search(user=request.user, query=query, collection_ids=chosen, k=10)
        except LLMError as exc:
            error = f"Search needs the embedding model: {exc}"
    context = {"query": query, "hits": hits, "error": error, "collections": visible, "chosen": set(chosen)}
    template = "research/_results.html" if request.htmx else "research/search.html"  # type: ignore[attr-defined]
    return render(request, template, context)
