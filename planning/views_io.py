"""Task Master files and PRDs: upload, download, paste."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify

from planning import selectors, services
from planning.models import Tag
from planning.selectors import project_for, tag_for
from planning.services.io import MAX_FILE_BYTES
from planning.tmformat import FormatError
from planning.views import _me
from taskmaster.access import Perm, can
from taskmaster.uploads import UploadRejected, upload_json_text, upload_text

PRD_MAX_BYTES = 2 * 1024 * 1024


def _download(data: object, name: str) -> HttpResponse:
    response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False) + "\n", content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the import/export page. POST: import an uploaded tasks.json or complexity report."""
    project = project_for(request.user, Perm.VIEW, pk=pk)
    ctx = {
        "project": project,
        "tags": project.tags.all(),
        "can_edit": can(request.user, project.team, Perm.EDIT),
        "max_mb": MAX_FILE_BYTES // (1024 * 1024),
    }
    if request.method != "POST":
        return render(request, "planning/transfer.html", ctx)
    project = project_for(request.user, Perm.EDIT, pk=pk)
    upload = request.FILES.get("file")
    if upload is None:
        return render(
            request,
            "planning/transfer.html",
            ctx | {"error": "Choose a tasks.json or task-complexity-report.json file to import."},
            status=400,
        )
    if upload.size is not None and upload.size > MAX_FILE_BYTES:
        return render(
            request,
            "planning/transfer.html",
            ctx | {"error": f"{upload.name} is larger than {ctx['max_mb']} MB; nothing was imported."},
            status=400,
        )
    raw = upload.read()
    try:
        # The content decides, not the name: a renamed PDF or image is refused before parsing.
        upload_json_text(raw, name=upload.name or "", expected="a tasks.json or task-complexity-report.json file")
        kind = request.POST.get("kind", "tasks")
        if kind == "complexity":
            tag = tag_for(request.user, Perm.EDIT, pk=int(request.POST.get("tag") or 0), project=project)
            n = services.complexity_import(tag=tag, raw=raw, user=_me(request))
            messages.success(request, f"Imported {n} complexity entries into {tag.name}.")
            return redirect("planning:tasks", tag_id=tag.pk)
        tags = services.taskmaster_import(
            project=project, raw=raw, user=_me(request), flat_tag=request.POST.get("flat_tag") or "master"
        )
    except FormatError as exc:
        return render(
            request,
            "planning/transfer.html",
            ctx | {"error": f"{upload.name}: nothing was imported. {exc}", "errors": exc.errors[:20]},
            status=400,
        )
    except (ValidationError, ValueError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else "Choose a tag."
        return render(request, "planning/transfer.html", ctx | {"error": text}, status=400)
    messages.success(
        request,
        "Imported "
        + ", ".join(f"{t.name} ({t.tasks.count()} tasks)" for t in tags)
        + ". Each tag's change is a revision you can roll back.",
    )
    return redirect("planning:tasks", tag_id=tags[0].pk)


@login_required
def export_tasks(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, Perm.VIEW, pk=pk)
    names = [n for n in request.GET.getlist("tag") if n]
    try:
        data = services.taskmaster_export(project=project, tag_names=names or None, flat=bool(request.GET.get("flat")))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("planning:transfer", pk=project.pk)
    return _download(data, "tasks.json")


@login_required
def export_complexity(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag: Tag = tag_for(request.user, Perm.VIEW, pk=tag_id)
    name = "task-complexity-report.json" if tag.name == "master" else f"task-complexity-report_{slugify(tag.name)}.json"
    return _download(services.complexity_export(tag=tag), name)


@login_required
def prds(request: HttpRequest, pk: int) -> HttpResponse:
    """List PRDs; POST adds one, pasted or uploaded (.md / .txt)."""
    project = project_for(request.user, Perm.VIEW, pk=pk)
    ctx = {
        "project": project,
        "prds": selectors.project_prds(project),
        "tags": project.tags.all(),
        "can_edit": can(request.user, project.team, Perm.EDIT),
    }
    if request.method != "POST":
        return render(request, "planning/prds.html", ctx)
    project = project_for(request.user, Perm.EDIT, pk=pk)
    text, file_name = request.POST.get("text", ""), ""
    upload = request.FILES.get("file")
    if upload is not None:
        if upload.size is not None and upload.size > PRD_MAX_BYTES:
            return render(
                request, "planning/prds.html", ctx | {"error": "The PRD file is larger than 2 MB."}, status=400
            )
        try:
            text = upload_text(upload.read(), name=upload.name or "", expected="a Markdown or plain-text PRD")
        except UploadRejected as exc:
            return render(request, "planning/prds.html", ctx | {"error": " ".join(exc.messages)}, status=400)
        file_name = upload.name or ""
    try:
        services.prd_create(
            project=project, title=request.POST.get("title", ""), text=text, file_name=file_name, user=_me(request)
        )
    except ValidationError as exc:
        return render(request, "planning/prds.html", ctx | {"error": " ".join(exc.messages)}, status=400)
    messages.success(request, "PRD saved. Parse it into tasks below.")
    return redirect("planning:prds", pk=project.pk)
