"""The planning API (``/api/v1/``): the team's plan as JSON, with the same bearer tokens as ``/v1``.

Thin: parse (``planning.api_schemas``), authorise with the ``_for`` helpers (404 for
outsiders; a viewer who writes gets 403), call a service, answer with Task Master's task
objects (``planning.tmformat.item_out``) so Task Master users recognise them. Errors are
``{"error": {"message", "type", "param", "code"}}`` as on ``/v1``. See docs/planning-api.md.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from planning import api_services, selectors, services
from planning.api_schemas import (
    DependencyIn,
    PrdIn,
    ProjectIn,
    StatusIn,
    TagIn,
    TaskIn,
    TaskPatch,
    parse,
    query,
    read_body,
)
from planning.api_shapes import (
    item_json,
    prd_json,
    project_json,
    revision_json,
    subtask_json,
    tag_json,
    task_json,
)
from planning.models import Priority, Project, Revision, Status, Subtask, Tag, Task
from planning.selectors import project_for, revision_for, subtask_for, tag_for, task_for
from planning.services.io import MAX_FILE_BYTES
from planning.snapshot import graph_of, tag_tasks
from planning.tmformat import FormatError
from taskmaster.access import Perm, can
from taskmaster.api.auth import ApiCaller, api_view
from taskmaster.api.errors import ApiError, bad_request
from taskmaster.models import Team

REF = re.compile(r"^([1-9][0-9]*)(?:\.([1-9][0-9]*))?$")
NEXT_RULE = (
    "First a ready subtask of an in-progress task; otherwise a ready task by priority, then fewest "
    "dependencies, then lowest id. Ready: pending or in-progress, every dependency done or cancelled."
)


# --- plumbing ------------------------------------------------------------------------------------


def endpoint(*methods: str) -> Any:
    """``api_view`` plus the allowed methods, and service errors turned into JSON errors."""

    def wrap(view: Any) -> Any:
        @functools.wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                raise ApiError(405, f"Use {' or '.join(methods)} for {request.path}.", code="method_not_allowed")
            try:
                response: HttpResponse = view(request, *args, **kwargs)
            except ValidationError as exc:
                raise ApiError(400, " ".join(exc.messages), code="invalid_request") from None
            return response

        return api_view(inner)

    return wrap


def _caller(request: HttpRequest) -> ApiCaller:
    caller: ApiCaller = request.api  # type: ignore[attr-defined]
    return caller


def _user(request: HttpRequest) -> User:
    return _caller(request).user


def _writable(user: User, team: Team) -> None:
    if not can(user, team, Perm.EDIT):
        raise PermissionDenied(f"You are a viewer in team {team.slug}: you can read its plan but not change it.")


def _project(request: HttpRequest, pk: int, *, write: bool = False) -> Project:
    project = project_for(_user(request), Perm.VIEW, pk=pk)
    if write:
        _writable(_user(request), project.team)
    return project


def _tag(request: HttpRequest, tag_id: int, *, write: bool = False) -> Tag:
    tag = tag_for(_user(request), Perm.VIEW, pk=tag_id)
    if write:
        _writable(_user(request), tag.project.team)
    return tag


def _item(request: HttpRequest, tag: Tag, ref: str) -> Task | Subtask:
    match = REF.match(ref)
    if match is None:
        raise ApiError(
            400, f"'{ref}' is not a task id (like 3) or a subtask id (like 3.2).", param="id", code="invalid_value"
        )
    try:
        if match[2] is None:
            return task_for(_user(request), Perm.VIEW, tag=tag, number=int(match[1]))
        return subtask_for(
            _user(request), Perm.VIEW, parent__tag=tag, parent__number=int(match[1]), number=int(match[2])
        )
    except Http404:
        raise ApiError(404, f"Tag {tag.name} has no task {ref}.", param="id", code="not_found") from None


def _dep_ref(value: int | str, parent: int | None) -> str:
    """A dependency as a canonical ref; in a subtask a bare integer is a sibling, as in Task Master."""
    if isinstance(value, int):
        return f"{parent}.{value}" if parent is not None else str(value)
    return value.strip().lstrip("#")


def _created(data: dict[str, Any], location: str, revision: Revision | None) -> JsonResponse:
    response = _json(data, status=201, revision=revision)
    response["Location"] = location
    return response


def _json(data: Any, *, status: int = 200, revision: Revision | None = None) -> JsonResponse:
    response = JsonResponse(data, status=status, safe=False, json_dumps_params={"ensure_ascii": False})
    if revision is not None:
        # Every write is a revision; clients can show or roll it back.
        response["X-Planning-Revision"] = str(revision.pk)
    return response


# --- projects, tags, PRDs, tasks.json --------------------------------------------------------------


@endpoint("GET", "POST")
def projects(request: HttpRequest) -> HttpResponse:
    caller = _caller(request)
    if request.method == "GET":
        query(request.GET, set())
        rows = selectors.projects_list(caller.user, caller.team).select_related("team")
        return _json({"projects": [project_json(p) for p in rows]})
    body = parse(ProjectIn, request)
    if caller.team is None:
        raise bad_request("You belong to no team; create or join one first.", code="no_team")
    _writable(caller.user, caller.team)
    project = services.project_create(team=caller.team, name=body.name, description=body.description)
    return _created(project_json(project), reverse("planning_api:project", args=[project.pk]), None)


@endpoint("GET")
def project(request: HttpRequest, pk: int) -> HttpResponse:
    return _json(project_json(_project(request, pk)))


@endpoint("GET", "POST")
def tags(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "GET":
        p = _project(request, pk)
        return _json({"tags": project_json(p)["tags"]})
    p = _project(request, pk, write=True)
    body = parse(TagIn, request)
    if body.copyFrom is not None:
        source = Tag.objects.filter(project=p, name=body.copyFrom).first()
        if source is None:
            raise ApiError(404, f"Project {p.name} has no tag {body.copyFrom!r}.", param="copyFrom", code="not_found")
        tag = services.tag_copy(tag=source, name=body.name, user=_user(request))
        revision = tag.revisions.first()
    else:
        tag, revision = services.tag_create(project=p, name=body.name, description=body.description), None
    return _created(tag_json(tag), reverse("planning_api:tag", args=[tag.pk]), revision)


@endpoint("GET", "POST")
def prds(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "GET":
        p = _project(request, pk)
        rows = selectors.project_prds(p)
        return _json({"prds": [prd_json(r) for r in rows]})
    p = _project(request, pk, write=True)
    body = parse(PrdIn, request)
    prd = services.prd_create(project=p, title=body.title, text=body.text, user=_user(request))
    return _created(prd_json(prd), request.path, None)


def _tag_names(raw: str) -> list[str]:
    return [n for n in (part.strip() for part in raw.split(",")) if n]


@endpoint("GET", "POST")
def tasks_file(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: export Task Master's tasks.json (``?tag=a,b``, ``?format=flat``). POST: import one."""
    if request.method == "GET":
        p = _project(request, pk)
        q = query(request.GET, {"tag", "format"})
        if q.get("format", "tagged") not in {"tagged", "flat"}:
            raise bad_request("format is tagged (the default) or flat.", param="format", code="invalid_value")
        data = services.taskmaster_export(
            project=p, tag_names=_tag_names(q.get("tag", "")), flat=q.get("format") == "flat"
        )
        return _json(data)
    p = _project(request, pk, write=True)
    q = query(request.GET, {"flatTag"})
    raw = read_body(request, MAX_FILE_BYTES)
    try:
        done = services.taskmaster_import(
            project=p, raw=raw, user=_user(request), flat_tag=q.get("flatTag") or "master"
        )
    except FormatError as exc:
        raise ApiError(400, f"Nothing was imported. {exc}", code="invalid_file") from None
    return _json({"imported": [tag_json(t) for t in done], "revisions": [t.revisions.first().pk for t in done]})  # type: ignore[union-attr]


# --- one tag -------------------------------------------------------------------------------------


@endpoint("GET")
def tag(request: HttpRequest, tag_id: int) -> HttpResponse:
    return _json(tag_json(_tag(request, tag_id)))


def _choices(raw: str, allowed: list[str], param: str) -> set[str]:
    chosen = set(_tag_names(raw))
    wrong = sorted(chosen - set(allowed))
    if wrong:
        raise ApiError(
            400,
            f"Unknown {param} {wrong[0]!r}; use one of {', '.join(allowed)} (comma-separated for several).",
            param=param,
            code="invalid_value",
        )
    return chosen


def _new_item(request: HttpRequest) -> TaskIn:
    body = parse(TaskIn, request)
    if not body.title.strip():
        raise bad_request("The title is blank.", param="title", code="invalid_value")
    # Past this point the only refusals left are about dependencies.
    return body


@endpoint("GET", "POST")
def tasks(request: HttpRequest, tag_id: int) -> HttpResponse:
    if request.method == "POST":
        tag = _tag(request, tag_id, write=True)
        body = _new_item(request)
        deps = [_dep_ref(d, None) for d in body.dependencies]
        try:
            task, revision = api_services.api_task_create(
                tag=tag, user=_user(request), fields=body.changes(), dependencies=deps
            )
        except ValidationError as exc:
            raise ApiError(400, " ".join(exc.messages), param="dependencies", code="invalid_dependency") from None
        url = reverse("planning_api:task", args=[tag.pk, task.ref])
        return _created(task_json(Task.objects.get(pk=task.pk)), url, revision)
    tag = _tag(request, tag_id)
    q = query(request.GET, {"status", "priority", "q", "withSubtasks"})
    statuses = _choices(q.get("status", ""), list(Status.values), "status")
    priorities = _choices(q.get("priority", ""), list(Priority.values), "priority")
    with_subtasks = q.get("withSubtasks", "true").lower()
    if with_subtasks not in {"true", "false"}:
        raise bad_request("withSubtasks is true or false.", param="withSubtasks", code="invalid_value")
    all_tasks = tag_tasks(tag)
    graph = graph_of(all_tasks)
    text = q.get("q", "").lower()
    rows = [
        t
        for t in all_tasks
        if (not statuses or t.status in statuses)
        and (not priorities or t.priority in priorities)
        and (not text or text in f"{t.title} {t.description}".lower())
    ]
    out = [task_json(t, graph) for t in rows]
    if with_subtasks == "false":
        for obj in out:
            obj.pop("subtasks", None)
    return _json(
        {
            "tag": tag.name,
            "tagId": tag.pk,
            "filter": {"status": sorted(statuses), "priority": sorted(priorities), "q": q.get("q", "")},
            "count": len(out),
            "total": len(all_tasks),
            "tasks": out,
        }
    )


@endpoint("GET", "PATCH", "DELETE")
def task(request: HttpRequest, tag_id: int, ref: str) -> HttpResponse:
    if request.method == "GET":
        tag = _tag(request, tag_id)
        return _json(item_json(_item(request, tag, ref)))
    tag = _tag(request, tag_id, write=True)
    item = _item(request, tag, ref)
    if request.method == "DELETE":
        if isinstance(item, Task):
            revision: Revision | None = services.task_delete(task=item, user=_user(request))
        else:
            revision = api_services.api_subtask_delete(subtask=item, user=_user(request))
        return _json({"deleted": item.ref}, revision=revision)
    body = parse(TaskPatch, request)
    fields = body.changes()
    if not fields:
        names = ", ".join(k for k in TaskPatch.model_fields if k != "version")
        raise bad_request(f"Nothing to update: send at least one of {names}.", code="missing_field")
    return _update(request, item, fields, body.version)


def _update(request: HttpRequest, item: Task | Subtask, fields: dict[str, Any], version: int | None) -> HttpResponse:
    try:
        fresh, changed, revision = api_services.api_item_update(
            item=item, user=_user(request), fields=fields, expected_version=version
        )
    except services.EditConflict as exc:
        raise ApiError(
            409,
            f"{exc.current.ref} was changed by someone else: it is now at version {exc.current.version}, "
            f"you sent version {version}. Read it again and resend your change.",
            param="version",
            code="edit_conflict",
        ) from None
    response = _json(item_json(fresh), revision=revision)
    if changed:
        response["X-Planning-Status-Changed"] = ",".join(changed)
    return response


@endpoint("POST")
def task_status(request: HttpRequest, tag_id: int, ref: str) -> HttpResponse:
    """Task Master's set-status: a task set to done takes its unfinished subtasks along."""
    tag = _tag(request, tag_id, write=True)
    item = _item(request, tag, ref)
    body = parse(StatusIn, request)
    return _update(request, item, {"status": body.status}, None)


@endpoint("POST")
def subtasks(request: HttpRequest, tag_id: int, ref: str) -> HttpResponse:
    tag = _tag(request, tag_id, write=True)
    parent = _item(request, tag, ref)
    if not isinstance(parent, Task):
        raise bad_request(f"{ref} is a subtask; subtasks have no subtasks (promote it to a task first).", param="id")
    body = _new_item(request)
    deps = [_dep_ref(d, parent.number) for d in body.dependencies]
    try:
        sub, revision = api_services.api_subtask_create(
            task=parent, user=_user(request), fields=body.changes(), dependencies=deps
        )
    except ValidationError as exc:
        raise ApiError(400, " ".join(exc.messages), param="dependencies", code="invalid_dependency") from None
    return _created(subtask_json(sub), reverse("planning_api:task", args=[tag.pk, sub.ref]), revision)


@endpoint("POST")
def dependencies(request: HttpRequest, tag_id: int, ref: str) -> HttpResponse:
    tag = _tag(request, tag_id, write=True)
    item = _item(request, tag, ref)
    body = parse(DependencyIn, request)
    dep = _dep_ref(body.dependsOn, item.parent.number if isinstance(item, Subtask) else None)
    return _dependency_change(request, tag, item, dep, add=True)


@endpoint("DELETE")
def dependency(request: HttpRequest, tag_id: int, ref: str, dep: str) -> HttpResponse:
    tag = _tag(request, tag_id, write=True)
    item = _item(request, tag, ref)
    return _dependency_change(request, tag, item, dep, add=False)


def _dependency_change(request: HttpRequest, tag: Tag, item: Task | Subtask, dep: str, *, add: bool) -> HttpResponse:
    try:
        revision = api_services.api_dependency_change(
            tag=tag, user=_user(request), item_ref=item.ref, dep_ref=dep, add=add
        )
    except ValidationError as exc:
        raise ApiError(400, " ".join(exc.messages), param="dependsOn", code="invalid_dependency") from None
    fresh = Task.objects.get(pk=item.pk) if isinstance(item, Task) else Subtask.objects.get(pk=item.pk)
    return _json(item_json(fresh), revision=revision)


def _issue(issue: Any) -> dict[str, str]:
    return {"type": issue.kind, "id": issue.item, "dependsOn": issue.dependency, "message": issue.message}


@endpoint("GET")
def dependencies_validate(request: HttpRequest, tag_id: int) -> HttpResponse:
    issues = selectors.dependency_issues(_tag(request, tag_id))
    return _json({"valid": not issues, "issues": [_issue(i) for i in issues]})


@endpoint("POST")
def dependencies_fix(request: HttpRequest, tag_id: int) -> HttpResponse:
    tag = _tag(request, tag_id, write=True)
    read_body(request)  # an empty or any body: nothing to choose
    revision, removed = services.dependencies_fix(tag=tag, user=_user(request))
    return _json({"removed": [_issue(i) for i in removed]}, revision=revision)


@endpoint("GET")
def next_task(request: HttpRequest, tag_id: int) -> HttpResponse:
    item, _deps = selectors.next_task(_tag(request, tag_id))
    return _json({"task": item_json(item) if item is not None else None, "rule": NEXT_RULE})


@endpoint("GET")
def complexity_report(request: HttpRequest, tag_id: int) -> HttpResponse:
    return _json(services.complexity_export(tag=_tag(request, tag_id)))


@endpoint("GET")
def revisions(request: HttpRequest, tag_id: int) -> HttpResponse:
    rows = selectors.tag_revisions(_tag(request, tag_id))[:100]
    return _json({"revisions": [revision_json(r) for r in rows]})


@endpoint("POST")
def revision_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    rev = revision_for(_user(request), Perm.VIEW, pk=pk)
    _writable(_user(request), rev.tag.project.team)
    try:
        new = services.revision_rollback(revision=rev, user=_user(request))
    except ValidationError as exc:
        raise ApiError(409, " ".join(exc.messages), code="already_rolled_back") from None
    return _json(revision_json(new), revision=new)
