"""Starting AI workflows (each a Job) and following their progress."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from planning.models import PRD, Priority, Tag, Task
from planning.selectors import tag_for
from planning.services import workflow_start
from planning.services.ai import KINDS
from planning.views import _me
from taskmaster.access import Perm
from taskmaster.llm import LLMError
from taskmaster.selectors import job_for


def _bounded(value: str | None, low: int, high: int, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"{what} must be a whole number.") from None
    if not low <= number <= high:
        raise ValidationError(f"{what} must be between {low} and {high}.")
    return number


def _numbers(request: HttpRequest, tag: Tag) -> list[int]:
    raw = " ".join(request.POST.getlist("task_numbers")).replace(",", " ").split()
    try:
        numbers = sorted({int(n) for n in raw})
    except ValueError:
        raise ValidationError("Task numbers are whole numbers separated by spaces or commas.") from None
    unknown = set(numbers) - set(Task.objects.filter(tag=tag, number__in=numbers).values_list("number", flat=True))
    if unknown:
        raise ValidationError(f"Tag {tag.name} has no task {', '.join(map(str, sorted(unknown)))}.")
    return numbers


def _collections(request: HttpRequest, tag: Tag) -> list[int]:
    """Research mode: collections of the project's team that the user may read (404-free: a clear error)."""
    from research.selectors import collections_for

    try:
        wanted = sorted({int(c) for c in request.POST.getlist("collections")})
    except ValueError:
        raise ValidationError("Collections are chosen by id.") from None
    if not wanted:
        return []
    allowed = set(
        collections_for(request.user, Perm.VIEW, team=tag.project.team)
        .filter(pk__in=wanted)
        .values_list("pk", flat=True)
    )
    if set(wanted) - allowed:
        raise ValidationError("Choose research collections of this project's team.")
    return wanted


def _prompt(request: HttpRequest, required: bool) -> str:
    text = request.POST.get("prompt", "").strip()
    if required and not text:
        raise ValidationError("Write a prompt: what should change?")
    if len(text) > 4000:
        raise ValidationError("The prompt can be at most 4,000 characters.")
    return text


def _params(request: HttpRequest, tag: Tag, kind: str) -> dict[str, Any]:
    post = request.POST
    if kind == "planning.parse_prd":
        prd = PRD.objects.filter(pk=_bounded(post.get("prd"), 1, 2**31, "PRD") or 0, project=tag.project).first()
        if prd is None:
            raise ValidationError("Choose a PRD of this project (add one on the PRDs page).")
        mode = post.get("mode", "append")
        if mode not in {"append", "replace"}:
            raise ValidationError("Mode is append or replace.")
        return {
            "prd_id": prd.pk,
            "num_tasks": _bounded(post.get("num_tasks"), 1, 50, "Number of tasks"),
            "mode": mode,
            "collection_ids": _collections(request, tag),
        }
    if kind == "planning.expand":
        number = _bounded(post.get("task_number"), 1, 10**6, "Task number")
        if number is None or not Task.objects.filter(tag=tag, number=number).exists():
            raise ValidationError(f"Tag {tag.name} has no task {post.get('task_number')}.")
        return {
            "task_number": number,
            "num_subtasks": _bounded(post.get("num_subtasks"), 1, 10, "Subtasks"),
            "prompt": _prompt(request, False),
            "replace": bool(post.get("replace")),
        }
    if kind == "planning.expand_all":
        return {"threshold": _bounded(post.get("threshold"), 1, 10, "Threshold"), "replace": bool(post.get("replace"))}
    if kind == "planning.analyze":
        return {
            "task_numbers": _numbers(request, tag),
            "threshold": _bounded(post.get("threshold"), 1, 10, "Threshold"),
        }
    if kind == "planning.add_task":
        priority = post.get("priority", "")
        if priority and priority not in Priority.values:
            raise ValidationError(f"Unknown priority {priority!r}.")
        return {"prompt": _prompt(request, True), "priority": priority}
    if kind == "planning.update":
        mode = post.get("mode", "rewrite")
        if mode not in {"rewrite", "append"}:
            raise ValidationError("Mode is rewrite or append.")
        start = _bounded(post.get("from_number"), 1, 10**6, "From task")
        numbers = [] if start else _numbers(request, tag)
        if not start and not numbers:
            raise ValidationError("Choose the tasks to update, or a task number to update from.")
        return {"prompt": _prompt(request, True), "mode": mode, "from_number": start, "task_numbers": numbers}
    if kind == "planning.scope":
        direction, strength = post.get("direction", ""), post.get("strength", "regular")
        if direction not in {"up", "down"} or strength not in {"light", "regular", "heavy"}:
            raise ValidationError("Scope goes up or down, with light, regular or heavy strength.")
        numbers = _numbers(request, tag)
        if not numbers:
            raise ValidationError("Choose the task to scope.")
        return {
            "task_numbers": numbers,
            "direction": direction,
            "strength": strength,
            "prompt": _prompt(request, False),
        }
    raise ValidationError(f"Unknown workflow {kind!r}.")


@login_required
@require_POST
def workflow(request: HttpRequest, tag_id: int, kind: str) -> HttpResponse:
    tag = tag_for(request.user, Perm.EDIT, pk=tag_id)
    full = f"planning.{kind}"
    back = request.POST.get("next") or reverse("planning:tasks", args=[tag.pk])
    try:
        if full not in KINDS:
            raise ValidationError(f"Unknown workflow {kind!r}.")
        params = _params(request, tag, full) | {"detail": "full" if request.POST.get("detail") == "full" else "short"}
        from taskmaster.llm.registry import model_for_role

        model_for_role("main")  # a missing model is reported now, not after a queue wait
        job = workflow_start(kind=full, tag=tag, user=_me(request), params=params)  # type: ignore[arg-type]
    except (ValidationError, LLMError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else f"No model available: {exc}"
        if request.htmx:  # type: ignore[attr-defined]
            return HttpResponse(f'<div class="msg error" role="alert">{_escape(text)}</div>', status=422)
        messages.error(request, text)
        return redirect(back)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "planning/_job.html", {"job": job, "tag": tag})
    messages.info(request, f"{job.title} started; follow its progress below.")
    return redirect(back)


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


@login_required
def job(request: HttpRequest, tag_id: int, pk: int) -> HttpResponse:
    """The progress card; once a job that was being watched finishes, the page reloads to show its changes."""
    tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    j = job_for(request.user, pk)
    response = render(request, "planning/_job.html", {"job": j, "tag": tag})
    if j.finished and request.htmx and j.status == "succeeded":  # type: ignore[attr-defined]
        response["HX-Refresh"] = "true"
    return response
