"""Import and export of Task Master files: atomic, each changed tag recorded as a revision."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from planning import tmformat
from planning.models import ComplexityReport, Project, Tag, Task
from planning.services.core import recording, tag_create
from planning.snapshot import restore, snapshot

MAX_FILE_BYTES = 5 * 1024 * 1024


def _item_snap(item: tmformat.Item) -> dict[str, Any]:
    return {
        "number": item.number,
        **item.fields,
        "metadata": item.metadata,
        "dependencies": item.dependencies,
        "subtasks": [_item_snap(s) for s in item.subtasks],
    }


@transaction.atomic
def taskmaster_import(*, project: Project, raw: bytes | str, user: User | None, flat_tag: str = "master") -> list[Tag]:
    """Import a tasks.json: each tag in the file replaces the tag of that name (or creates it).

    Notes and complexity reports of tasks whose number survives are kept. Nothing is
    written unless the whole file is valid.
    """
    if len(raw) > MAX_FILE_BYTES:
        raise tmformat.FormatError([f"$: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"])
    tags = tmformat.parse_tasks(tmformat.loads(raw), flat_tag=flat_tag)
    done: list[Tag] = []
    for data in tags:
        tag = Tag.objects.filter(project=project, name=data.name).first()
        if tag is None:
            tag = tag_create(project=project, name=data.name)
        current = {t["number"]: t for t in snapshot(tag)["tasks"]}
        tasks = []
        for item in data.tasks:
            snap = _item_snap(item)
            old = current.get(item.number, {})
            snap["complexity"], snap["notes"] = old.get("complexity", []), old.get("notes", [])
            tasks.append(snap)
        with recording(tag=tag, user=user, workflow="import") as draft:
            restore(tag, {"name": tag.name, "metadata": data.metadata, "tasks": tasks})
            draft.summary = f"Imported {len(tasks)} tasks into tag {tag.name} from tasks.json"
        done.append(tag)
    return done


@transaction.atomic
def complexity_import(*, tag: Tag, raw: bytes | str, user: User | None) -> int:
    """Import a task-complexity-report*.json into one tag; every taskId must exist there."""
    if len(raw) > MAX_FILE_BYTES:
        raise tmformat.FormatError([f"$: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"])
    meta, entries = tmformat.parse_complexity(tmformat.loads(raw))
    tasks = {t.number: t for t in Task.objects.filter(tag=tag)}
    missing = [
        f"complexityAnalysis[{i}].taskId: tag {tag.name} has no task {e.task_id}"
        for i, e in enumerate(entries)
        if e.task_id not in tasks
    ]
    if missing:
        raise tmformat.FormatError(missing)
    threshold = round(meta.get("thresholdScore", tag.project.complexity_threshold))
    with recording(tag=tag, user=user, workflow="import-complexity") as draft:
        for e in entries:
            ComplexityReport.objects.create(
                task=tasks[e.task_id],
                score=e.score,
                recommended_subtasks=e.recommended_subtasks,
                expansion_prompt=e.expansion_prompt,
                reasoning=e.reasoning,
                threshold=threshold,
                model_name=str(meta.get("model", "imported"))[:100],
            )
        draft.summary = f"Imported a complexity report for {len(entries)} tasks"
    return len(entries)


def taskmaster_export(*, project: Project, tag_names: list[str] | None = None, flat: bool = False) -> dict[str, Any]:
    tags = list(Tag.objects.filter(project=project).order_by("created_at", "pk"))
    if tag_names:
        unknown = set(tag_names) - {t.name for t in tags}
        if unknown:
            raise ValidationError(f"Project {project.name} has no tag {', '.join(sorted(unknown))}.")
        tags = [t for t in tags if t.name in tag_names]
    if flat and len(tags) != 1:
        raise ValidationError("The flat format holds exactly one tag: choose one.")
    return tmformat.tasks_file([snapshot(t) for t in tags], flat=flat)


def complexity_export(*, tag: Tag) -> dict[str, Any]:
    """The current (newest) report entry of every analysed task, in Task Master's shape."""
    latest: dict[int, ComplexityReport] = {}
    for r in ComplexityReport.objects.filter(task__tag=tag).select_related("task").order_by("created_at", "pk"):
        latest[r.task.number] = r
    entries = [latest[n] for n in sorted(latest)]
    return {
        "meta": {
            "generatedAt": timezone.now().isoformat(),
            "tasksAnalyzed": len(entries),
            "totalTasks": Task.objects.filter(tag=tag).count(),
            "analysisCount": len(entries),
            "thresholdScore": tag.project.complexity_threshold,
            "projectName": tag.project.name,
            "usedResearch": False,
        },
        "complexityAnalysis": [
            {
                "taskId": r.task.number,
                "taskTitle": r.task.title,
                "complexityScore": r.score,
                "recommendedSubtasks": r.recommended_subtasks,
                "expansionPrompt": r.expansion_prompt,
                "reasoning": r.reasoning,
            }
            for r in entries
        ],
    }
