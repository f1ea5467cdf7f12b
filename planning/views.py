"""Planning pages: projects, task list, board, graph, task detail, revisions. Thin: parse, authorise, call."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from planning import selectors, services
from planning.graph import render_svg
from planning.models import Priority, Status, Subtask, Tag, Task
from planning.selectors import project_for, revision_for, subtask_for, tag_for, task_for
from planning.snapshot import diff, graph_of, tag_tasks
from taskmaster.access import Perm, can
from taskmaster.models import Job

NEXT_STATUS = {
    "pending": "in-progress",
    "in-progress": "review",
    "review": "done",
    "blocked": "pending",
    "deferred": "pending",
}
PREV_STATUS = {"in-progress": "pending", "review": "in-progress", "done": "review", "cancelled": "pending"}


def _me(request: HttpRequest) -> User:
    """The signed-in user (every view here is behind login_required)."""
    assert isinstance(request.user, User)
    return request.user


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def tag_jobs(tag: Tag, limit: int = 3) -> list[Job]:
    return list(
        Job.objects.filter(team_id=tag.project.team_id, kind__startswith="planning.", params__tag_id=tag.pk).order_by(
            "-created_at"
        )[:limit]
    )


def _tag_context(request: HttpRequest, tag: Tag, tab: str) -> dict[str, Any]:
    return {
        "tag": tag,
        "project": tag.project,
        "tags": tag.project.tags.all(),
        "tab": tab,
        "can_edit": can(request.user, tag.project.team, Perm.EDIT),
        "statuses": Status.choices,
        "priorities": Priority.choices,
        "jobs": tag_jobs(tag),
    }


# --- projects ------------------------------------------------------------------------------


@login_required
def index(request: HttpRequest) -> HttpResponse:
    team = getattr(request, "team", None)
    if request.method == "POST":
        if team is None or not can(request.user, team, Perm.EDIT):
            messages.error(request, "You need edit rights in the current team to create a project.")
            return redirect("planning:index")
        try:
            project = services.project_create(
                team=team, name=request.POST.get("name", ""), description=request.POST.get("description", "")
            )
        except ValidationError as exc:
            messages.error(request, _errors(exc))
            return redirect("planning:index")
        return redirect("planning:project", pk=project.pk)
    return render(
        request,
        "planning/index.html",
        {
            "projects": selectors.projects_list(request.user, team),
            "can_create": team is not None and can(request.user, team, Perm.EDIT),
        },
    )


@login_required
def project(request: HttpRequest, pk: int) -> HttpResponse:
    p = project_for(request.user, Perm.VIEW, pk=pk)
    return redirect("planning:tasks", tag_id=selectors.default_tag(p).pk)


@login_required
@require_POST
def project_settings(request: HttpRequest, pk: int) -> HttpResponse:
    p = project_for(request.user, Perm.EDIT, pk=pk)
    try:
        services.project_update(project=p, complexity_threshold=int(request.POST.get("complexity_threshold", "")))
        messages.success(request, "Complexity threshold saved.")
    except (ValueError, ValidationError):
        messages.error(request, "The complexity threshold is a score from 1 to 10.")
    return redirect(request.POST.get("next") or reverse("planning:project", args=[p.pk]))


@login_required
@require_POST
def tag_create(request: HttpRequest, pk: int) -> HttpResponse:
    p = project_for(request.user, Perm.EDIT, pk=pk)
    try:
        tag = services.tag_create(
            project=p, name=request.POST.get("name", ""), description=request.POST.get("description", "")
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("planning:project", pk=p.pk)
    return redirect("planning:tasks", tag_id=tag.pk)


@login_required
@require_POST
def tag_copy(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.EDIT, pk=tag_id)
    try:
        new = services.tag_copy(tag=tag, name=request.POST.get("name", ""), user=_me(request))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("planning:tasks", tag_id=tag.pk)
    messages.success(request, f"Copied tag {tag.name} to {new.name}.")
    return redirect("planning:tasks", tag_id=new.pk)


@login_required
@require_POST
def tasks_move(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.EDIT, pk=tag_id)
    target = tag_for(request.user, Perm.EDIT, pk=_int(request.POST.get("target")) or 0, project=tag.project)
    try:
        numbers = [int(n) for n in request.POST.getlist("numbers")]
        result = services.tasks_move(source=tag, target=target, numbers=numbers, user=_me(request))
    except (ValueError, ValidationError) as exc:
        messages.error(request, _errors(exc) if isinstance(exc, ValidationError) else "Task numbers are integers.")
        return redirect("planning:tasks", tag_id=tag.pk)
    moved = ", ".join(f"{a}→{b}" for a, b in result["moved"].items())
    dropped = result["dropped_dependencies"]
    messages.success(
        request,
        f"Moved to {target.name}: {moved}."
        + (f" Dropped dependencies that crossed tags: {', '.join(dropped)}." if dropped else ""),
    )
    return redirect("planning:tasks", tag_id=tag.pk)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


# --- tag pages ----------------------------------------------------------------------------------


@login_required
def task_list(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    status, priority, query = (request.GET.get(k, "") for k in ("status", "priority", "q"))
    tasks = tag_tasks(tag)
    nxt, nxt_deps = selectors.next_task(tag, tasks=tasks)
    ctx = _tag_context(request, tag, "list") | {
        "rows": selectors.task_rows(tag, status=status, priority=priority, query=query, tasks=tasks),
        "filters": {"status": status, "priority": priority, "q": query},
        "next": nxt,
        "next_deps": nxt_deps,
        "issues": selectors.dependency_issues(tag, tasks=tasks),
        "prds": selectors.project_prds(tag.project)[:20],
        "collections": _research_collections(request, tag),
    }
    return render(request, "planning/task_list.html", ctx)


def _research_collections(request: HttpRequest, tag: Tag) -> list[Any]:
    from research.selectors import collections_for

    return list(collections_for(request.user, Perm.VIEW, team=tag.project.team).order_by("name")[:50])


@login_required
def board(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    return render(request, "planning/board.html", _board_context(request, tag))


def _board_context(request: HttpRequest, tag: Tag) -> dict[str, Any]:
    return _tag_context(request, tag, "board") | {
        "columns": selectors.board_columns(tag),
        "next_status": NEXT_STATUS,
        "prev_status": PREV_STATUS,
    }


@login_required
def graph(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    tasks = tag_tasks(tag)
    urls = {t.number: reverse("planning:task", args=[t.pk]) for t in tasks}
    svg = render_svg(tasks, graph_of(tasks), urls)
    return render(
        request,
        "planning/graph.html",
        _tag_context(request, tag, "graph")
        | {"svg": svg, "issues": selectors.dependency_issues(tag, tasks=tasks), "count": len(tasks)},
    )


@login_required
@require_POST
def dependencies_fix(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.EDIT, pk=tag_id)
    revision, removed = services.dependencies_fix(tag=tag, user=_me(request))
    if revision is None:
        messages.info(request, "All dependencies are valid; nothing to fix.")
    else:
        messages.success(
            request, f"Removed {len(removed)} invalid dependencies: " + " ".join(i.message for i in removed[:10])
        )
    return redirect(request.POST.get("next") or reverse("planning:tasks", args=[tag.pk]))


@login_required
def revisions(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    return render(
        request,
        "planning/revisions.html",
        _tag_context(request, tag, "revisions") | {"revisions": selectors.tag_revisions(tag)[:100]},
    )


@login_required
def revision(request: HttpRequest, pk: int) -> HttpResponse:
    rev = revision_for(request.user, Perm.VIEW, pk=pk)
    return render(
        request,
        "planning/revision.html",
        _tag_context(request, rev.tag, "revisions")
        | {
            "revision": rev,
            "changes": diff(rev.snapshot_before, rev.snapshot_after),
            "current": rev.rolled_back_at is None and services.revision_is_current(rev),
        },
    )


@login_required
@require_POST
def revision_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    rev = revision_for(request.user, Perm.EDIT, pk=pk)
    try:
        services.revision_rollback(revision=rev, user=_me(request))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("planning:revision", pk=rev.pk)
    messages.success(request, f"Rolled back “{rev.summary}”. The rollback is itself a revision you can undo.")
    return redirect("planning:tasks", tag_id=rev.tag_id)


# --- tasks ----------------------------------------------------------------------------------------


@login_required
@require_POST
def task_create(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = tag_for(request.user, Perm.EDIT, pk=tag_id)
    try:
        task = services.task_create(
            tag=tag,
            title=request.POST.get("title", ""),
            description=request.POST.get("description", ""),
            priority=request.POST.get("priority") or Priority.MEDIUM,
            dependencies=request.POST.get("dependencies", "").replace(",", " ").split(),
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("planning:tasks", tag_id=tag.pk)
    messages.success(request, f"Added task {task.number}.")
    return redirect("planning:tasks", tag_id=tag.pk)


def _detail(request: HttpRequest, task: Task, *, status: int = 200, **extra: Any) -> HttpResponse:
    tag = task.tag
    graph = graph_of(tag_tasks(tag))
    subtasks = list(task.subtasks.all())
    ctx = _tag_context(request, tag, "list") | {
        "task": task,
        "deps": graph.get(task.ref, []),
        "subtasks": [(s, graph.get(s.ref, [])) for s in subtasks],
        "dependents": sorted(
            (r for r, ds in graph.items() if task.ref in ds), key=lambda r: [int(x) for x in r.split(".")]
        ),
        "reports": task.complexity_reports.all()[:5],
        "notes": task.notes.select_related("author"),
        "candidates": [r for r in graph if r != task.ref and not r.startswith(f"{task.number}.")],
        "form": {
            f: getattr(task, f) for f in ("title", "description", "details", "test_strategy", "priority", "status")
        }
        | {"version": task.version},
        **extra,
    }
    return render(request, "planning/task_detail.html", ctx, status=status)


@login_required
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, task_for(request.user, Perm.VIEW, pk=pk))


@login_required
@require_POST
def task_edit(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_for(request.user, Perm.EDIT, pk=pk)
    fields = {
        f: request.POST.get(f, "") for f in ("title", "description", "details", "test_strategy", "priority", "status")
    }
    version = _int(request.POST.get("version"))
    try:
        if version is None:
            raise ValidationError("The form lost its version number; reload the page and edit again.")
        services.item_update(item=task, expected_version=version, fields=fields)
    except services.EditConflict as exc:
        current = exc.current
        return _detail(
            request,
            task_for(request.user, Perm.VIEW, pk=pk),
            status=409,
            conflict=str(exc),
            theirs=current,
            form=fields | {"version": current.version},
        )
    except ValidationError as exc:
        return _detail(request, task, status=400, edit_error=_errors(exc), form=fields | {"version": version})
    messages.success(request, "Task saved.")
    return redirect("planning:task", pk=task.pk)


def _status_response(request: HttpRequest, tag: Tag, back: str) -> HttpResponse:
    if request.htmx and request.POST.get("view") == "board":  # type: ignore[attr-defined]
        return render(request, "planning/_board.html", _board_context(request, tag))
    return HttpResponseRedirect(back)


@login_required
@require_POST
def task_status(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_for(request.user, Perm.EDIT, pk=pk)
    try:
        changed = services.item_set_status(item=task, status=request.POST.get("status", ""), user=_me(request))
        if len(changed) > 1 and not request.htmx:  # type: ignore[attr-defined]
            messages.success(request, f"Task {task.number} done, with subtasks {', '.join(changed[1:])}.")
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return _status_response(request, task.tag, reverse("planning:task", args=[task.pk]))


@login_required
@require_POST
def task_delete(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_for(request.user, Perm.EDIT, pk=pk)
    services.task_delete(task=task, user=_me(request))
    messages.success(request, f"Deleted task {task.number}; undo it from Revisions.")
    return redirect("planning:tasks", tag_id=task.tag_id)


@login_required
@require_POST
def dependency_change(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Add or remove a dependency of the task or of one of its subtasks (``item`` is a ref)."""
    if action not in {"add", "remove"}:
        raise Http404("Unknown dependency action")
    task = task_for(request.user, Perm.EDIT, pk=pk)
    item = request.POST.get("item") or task.ref
    if item != task.ref and not item.startswith(f"{task.number}."):
        messages.error(request, f"{item} is not this task or one of its subtasks.")
        return redirect("planning:task", pk=task.pk)
    dep = request.POST.get("dependency", "").strip()
    try:
        if action == "add":
            services.dependency_add(tag=task.tag, item_ref=item, dep_ref=dep)
        else:
            services.dependency_remove(tag=task.tag, item_ref=item, dep_ref=dep)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("planning:task", pk=task.pk)


@login_required
@require_POST
def subtask_create(request: HttpRequest, pk: int) -> HttpResponse:
    task = task_for(request.user, Perm.EDIT, pk=pk)
    try:
        services.subtask_create(
            task=task, title=request.POST.get("title", ""), description=request.POST.get("description", "")
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("planning:task", pk=task.pk)


@login_required
@require_POST
def subtask_status(request: HttpRequest, pk: int) -> HttpResponse:
    sub: Subtask = subtask_for(request.user, Perm.EDIT, pk=pk)
    try:
        services.item_set_status(item=sub, status=request.POST.get("status", ""), user=_me(request))
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    return redirect("planning:task", pk=sub.parent_id)


@login_required
@require_POST
def subtask_promote(request: HttpRequest, pk: int) -> HttpResponse:
    sub = subtask_for(request.user, Perm.EDIT, pk=pk)
    task = services.subtask_promote(subtask=sub, user=_me(request))
    messages.success(request, f"Subtask {sub.ref} is now task {task.number}; you can expand it in its turn.")
    return redirect("planning:task", pk=task.pk)


@login_required
@require_POST
def task_note_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Attach a note (e.g. a research answer with citations) to a task.

    Accepts a form (text, optional citations as JSON, source_ref) or a JSON body
    ``{"text": ..., "citations": [{"title", "url", "snippet"}], "source_ref": ...}``.
    """
    import json

    task = task_for(request.user, Perm.EDIT, pk=pk)
    wants_json = request.content_type == "application/json"
    try:
        if wants_json:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValidationError("The body must be a JSON object with text and citations.")
        else:
            body = dict(request.POST.items())
            raw = body.get("citations", "").strip()
            body["citations"] = json.loads(raw) if raw else []
        note = services.task_note_add(
            task=task,
            author=_me(request),
            text=str(body.get("text", "")),
            citations=body.get("citations") or [],
            source_ref=str(body.get("source_ref", "")),
        )
    except json.JSONDecodeError as exc:
        msg = f"Citations are not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        if wants_json:
            return HttpResponse(json.dumps({"error": msg}), status=400, content_type="application/json")
        messages.error(request, msg)
        return redirect("planning:task", pk=task.pk)
    except ValidationError as exc:
        if wants_json:
            return HttpResponse(json.dumps({"error": _errors(exc)}), status=400, content_type="application/json")
        messages.error(request, _errors(exc))
        return redirect("planning:task", pk=task.pk)
    if wants_json:
        url = reverse("planning:task", args=[task.pk]) + f"#note-{note.pk}"
        return HttpResponse(json.dumps({"id": note.pk, "url": url}), status=201, content_type="application/json")
    messages.success(request, "Note added.")
    return redirect("planning:task", pk=task.pk)
