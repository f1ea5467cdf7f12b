"""Editing a subtask in place on its task page (htmx partials; full pages without JavaScript)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from planning import services
from planning.models import Priority, Status, Subtask
from planning.selectors import subtask_for
from planning.snapshot import subtask_deps
from planning.views import _errors, _int, _me, _tag_context
from taskmaster.access import Perm, can

FIELDS = ("title", "description", "details", "test_strategy", "status", "priority")


def _context(request: HttpRequest, sub: Subtask, **extra: Any) -> dict[str, Any]:
    task = sub.parent
    deps = subtask_deps(sub)
    siblings = [s for s in task.subtasks.all() if s.pk != sub.pk]
    chosen = {int(r.partition(".")[2]) for r in deps if r.startswith(f"{task.number}.")}
    return {
        "sub": sub,
        "sdeps": deps,
        "task": task,
        "tag": task.tag,
        "can_edit": can(request.user, task.tag.project.team, Perm.EDIT),
        "statuses": Status.choices,
        "priorities": Priority.choices,
        "siblings": siblings,
        "form": {f: getattr(sub, f) for f in FIELDS} | {"version": sub.version, "dependencies": chosen},
        **extra,
    }


def _form_response(request: HttpRequest, sub: Subtask, *, status: int = 200, **extra: Any) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "planning/_subtask_form.html", _context(request, sub, **extra), status=status)
    page = _tag_context(request, sub.parent.tag, "list") | _context(request, sub, **extra)
    return render(request, "planning/subtask_edit.html", page, status=status)


@login_required
def subtask_row(request: HttpRequest, pk: int) -> HttpResponse:
    """The read-only row (what "Cancel" swaps back in); without htmx, the task page."""
    sub = subtask_for(request.user, Perm.VIEW, pk=pk)
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("planning:task", pk=sub.parent_id)
    return render(request, "planning/_subtask.html", _context(request, sub))


@login_required
@require_http_methods(["GET", "POST"])
def subtask_edit(request: HttpRequest, pk: int) -> HttpResponse:
    sub = subtask_for(request.user, Perm.EDIT, pk=pk)
    if request.method == "GET":
        return _form_response(request, sub)
    fields = {f: request.POST.get(f, "") for f in FIELDS}
    version = _int(request.POST.get("version"))
    try:
        chosen = [int(n) for n in request.POST.getlist("dependencies")]
    except ValueError:
        chosen = []
    mine = fields | {"version": version, "dependencies": set(chosen)}
    try:
        if version is None:
            raise ValidationError("The form lost its version number; reload the page and edit again.")
        sub = services.subtask_update(
            subtask=sub, expected_version=version, fields=fields, sibling_dependencies=chosen, user=_me(request)
        )
    except services.EditConflict as exc:
        current = subtask_for(request.user, Perm.EDIT, pk=pk)
        theirs = _context(request, current)["form"]
        return _form_response(
            request,
            current,
            status=409,
            conflict=str(exc),
            theirs=current,
            theirs_deps=sorted(theirs["dependencies"]),
            form=mine | {"version": current.version},
        )
    except ValidationError as exc:
        return _form_response(request, sub, status=400, edit_error=_errors(exc), form=mine)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "planning/_subtask.html", _context(request, sub, saved=True))
    messages.success(request, f"Subtask {sub.ref} saved.")
    return redirect("planning:task", pk=sub.parent_id)
