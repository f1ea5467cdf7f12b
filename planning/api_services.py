"""Writes behind the planning API: the planning services, each recorded as one revision.

The pages record revisions for AI workflows and bulk operations; an API client is often an
agent making many small edits, so here every write to a tag is recorded (workflow
``api-...``) and can be previewed and rolled back on the Revisions page. Each function is
one transaction: a failing step (a dependency cycle, a stale version) leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from planning.models import PRD, Revision, Status, Subtask, Tag, Task
from planning.services import dependency_add, dependency_remove, item_update, prd_create, subtask_create, task_create
from planning.services.ai import workflow_start
from planning.services.core import recording
from taskmaster.models import Job


def _tag_of(item: Task | Subtask) -> Tag:
    return item.tag if isinstance(item, Task) else item.parent.tag


def _fresh(item: Task | Subtask) -> Task | Subtask:
    if isinstance(item, Task):
        return Task.objects.select_related("tag__project").get(pk=item.pk)
    return Subtask.objects.select_related("parent__tag__project").get(pk=item.pk)


def _set_fields(item: Task | Subtask, fields: dict[str, Any]) -> Task | Subtask:
    if not fields:
        return item
    item = _fresh(item)
    return item_update(item=item, expected_version=item.version, fields=fields)


@transaction.atomic
def api_task_create(
    *, tag: Tag, user: User, fields: dict[str, Any], dependencies: list[str]
) -> tuple[Task, Revision | None]:
    fields = dict(fields)
    status = fields.pop("status", None)
    with recording(tag=tag, user=user, workflow="api-create-task") as draft:
        task = task_create(tag=tag, dependencies=dependencies, **fields)
        if status is not None and status != task.status:
            _set_fields(task, {"status": status})
        draft.summary = f"Created task {task.number}: {task.title}"[:500]
    return Task.objects.get(pk=task.pk), draft.revision


@transaction.atomic
def api_item_update(
    *, item: Task | Subtask, user: User, fields: dict[str, Any], expected_version: int | None
) -> tuple[Task | Subtask, list[str], Revision | None]:
    """Update fields (status included: a task set to done takes its subtasks along).

    Without ``expected_version`` the current version is used: the last write wins, but still
    as one revision. Returns the fresh item and the refs whose status changed.
    """
    tag = _tag_of(item)
    with recording(
        tag=tag, user=user, workflow="api-update-task" if isinstance(item, Task) else "api-update-subtask"
    ) as d:
        current = _fresh(item)
        changed: list[str] = []
        if "status" in fields and fields["status"] != current.status:
            changed.append(current.ref)
            if isinstance(current, Task) and fields["status"] == Status.DONE:
                changed += [s.ref for s in current.subtasks.exclude(status=Status.DONE).select_related("parent")]
        version = current.version if expected_version is None else expected_version
        fresh = item_update(item=current, expected_version=version, fields=fields)
        what = ", ".join(sorted(fields)) or "nothing"
        d.summary = f"Updated {'task' if isinstance(fresh, Task) else 'subtask'} {fresh.ref} ({what})"[:500]
    return _fresh(fresh), changed, d.revision


@transaction.atomic
def api_subtask_create(
    *, task: Task, user: User, fields: dict[str, Any], dependencies: list[str]
) -> tuple[Subtask, Revision | None]:
    fields = dict(fields)
    later: dict[str, Any] = {k: fields.pop(k) for k in ("status", "priority") if k in fields}
    with recording(tag=task.tag, user=user, workflow="api-create-subtask") as draft:
        sub = subtask_create(task=task, **fields)
        for ref in dependencies:
            dependency_add(tag=task.tag, item_ref=sub.ref, dep_ref=ref)
        _set_fields(sub, later)
        draft.summary = f"Created subtask {sub.ref}: {sub.title}"[:500]
    fresh = _fresh(sub)
    assert isinstance(fresh, Subtask)
    return fresh, draft.revision


@transaction.atomic
def api_subtask_delete(*, subtask: Subtask, user: User) -> Revision | None:
    """Delete a subtask; references to it elsewhere become missing ones that validate reports."""
    parent = subtask.parent
    with recording(tag=parent.tag, user=user, workflow="api-delete-subtask") as draft:
        draft.summary = f"Deleted subtask {subtask.ref}: {subtask.title}"[:500]
        Subtask.objects.filter(pk=subtask.pk).delete()
        # Editors holding the parent open must see that it changed.
        Task.objects.filter(pk=parent.pk).update(version=F("version") + 1, updated_at=timezone.now())
    return draft.revision


@transaction.atomic
def api_dependency_change(*, tag: Tag, user: User, item_ref: str, dep_ref: str, add: bool) -> Revision | None:
    with recording(tag=tag, user=user, workflow="api-add-dependency" if add else "api-remove-dependency") as draft:
        if add:
            dependency_add(tag=tag, item_ref=item_ref, dep_ref=dep_ref)
        else:
            dependency_remove(tag=tag, item_ref=item_ref, dep_ref=dep_ref)
        draft.summary = f"{item_ref} {'now depends' if add else 'no longer depends'} on {dep_ref}"
    return draft.revision


@transaction.atomic
def api_parse_prd_start(*, tag: Tag, user: User, prd: PRD | None, text: str, title: str, params: dict[str, Any]) -> Job:
    """Start Parse PRD on a stored PRD, or store the pasted text first (both or neither happen)."""
    if prd is None:
        prd = prd_create(project=tag.project, title=title, text=text, user=user)
    return workflow_start(kind="planning.parse_prd", tag=tag, user=user, params={**params, "prd_id": prd.pk})
