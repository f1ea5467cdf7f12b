"""JSON shapes of the planning API: Task Master's task objects and the other resources."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.urls import reverse

from planning.models import PRD, Project, Revision, Subtask, Tag, Task
from planning.snapshot import ITEM_FIELDS, subtask_deps, task_deps
from planning.tmformat import item_out
from taskmaster.models import Job

# API names of the AI workflows (Task Master's command names) and their job kinds.
WORKFLOWS = {
    "parse-prd": "planning.parse_prd",
    "expand": "planning.expand",
    "expand-all": "planning.expand_all",
    "analyze-complexity": "planning.analyze",
}
KIND_NAMES = {kind: name for name, kind in WORKFLOWS.items()}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# --- shapes --------------------------------------------------------------------------------------


def _data(item: Task | Subtask, deps: list[str]) -> dict[str, Any]:
    return {"number": item.number, **{f: getattr(item, f) for f in ITEM_FIELDS}, "dependencies": deps}


def task_json(task: Task, graph: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A task as in Task Master's tasks.json, plus ``version`` (for optimistic locking)."""
    subs = list(task.subtasks.all())

    def deps(item: Task | Subtask) -> list[str]:
        if graph is not None:
            return graph.get(item.ref, [])
        return task_deps(item) if isinstance(item, Task) else subtask_deps(item)

    data = _data(task, deps(task)) | {"subtasks": [_data(s, deps(s)) for s in subs]}
    out = item_out(data, None)
    for obj, sub in zip(out.get("subtasks", []), subs, strict=False):
        obj["version"] = sub.version
    out["version"] = task.version
    return out


def subtask_json(sub: Subtask) -> dict[str, Any]:
    out = item_out(_data(sub, subtask_deps(sub)), sub.parent.number)
    out["parentId"] = sub.parent.number
    out["version"] = sub.version
    return out


def item_json(item: Task | Subtask) -> dict[str, Any]:
    return task_json(item) if isinstance(item, Task) else subtask_json(item)


def tag_json(tag: Tag, task_count: int | None = None) -> dict[str, Any]:
    count = task_count if task_count is not None else getattr(tag, "n_tasks", None)
    return {
        "id": tag.pk,
        "name": tag.name,
        "projectId": tag.project_id,
        "description": tag.metadata.get("description", ""),
        "taskCount": count if count is not None else tag.tasks.count(),
        "createdAt": _iso(tag.created_at),
    }


def project_json(project: Project, *, tags: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": project.pk,
        "name": project.name,
        "slug": project.slug,
        "description": project.description,
        "team": project.team.slug,
        "complexityThreshold": project.complexity_threshold,
        "createdAt": _iso(project.created_at),
    }
    if tags:
        out["tags"] = [tag_json(t) for t in project.tags.annotate(n_tasks=Count("tasks")).order_by("created_at", "pk")]
    return out


def job_json(job: Job) -> dict[str, Any]:
    ref = job.revision_ref
    return {
        "id": job.pk,
        "kind": KIND_NAMES.get(job.kind, job.kind.removeprefix("planning.")),
        "title": job.title,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "percent": job.percent,
        "message": job.message,
        "error": job.error,
        "result": job.result,
        "revision": int(ref.split(":")[1]) if ref.startswith("planning.revision:") else None,
        "tagId": job.params.get("tag_id"),
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "finishedAt": _iso(job.finished_at),
        "url": reverse("planning_api:job", args=[job.pk]),
    }


def revision_json(rev: Revision) -> dict[str, Any]:
    return {
        "id": rev.pk,
        "tagId": rev.tag_id,
        "workflow": rev.workflow,
        "summary": rev.summary,
        "user": rev.user.username if rev.user else None,
        "createdAt": _iso(rev.created_at),
        "rolledBackAt": _iso(rev.rolled_back_at),
    }


def prd_json(prd: PRD) -> dict[str, Any]:
    return {"id": prd.pk, "title": prd.title, "createdAt": _iso(prd.created_at)}
