"""A tag as plain data and back: dependency refs, snapshots for revisions, exact restore.

Snapshots use ref strings for dependencies ("3", "3.2"), so they survive renumbering
of primary keys and are what revisions store, diff and restore.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from planning.models import ComplexityReport, Subtask, Tag, Task, TaskNote, WorkItem

ITEM_FIELDS = ("title", "description", "details", "test_strategy", "status", "priority", "metadata")


def task_deps(task: Task) -> list[str]:
    same = [str(d.number) for d in task.dependencies.all()]
    return sorted(dict.fromkeys([*same, *task.cross_dependencies]), key=_key)


def subtask_deps(sub: Subtask) -> list[str]:
    parent = sub.parent.number
    same = [f"{parent}.{d.number}" for d in sub.dependencies.all()]
    return sorted(dict.fromkeys([*same, *sub.cross_dependencies]), key=_key)


def _key(ref: str) -> tuple[int, ...]:
    from planning.deps import ref_key

    return ref_key(ref)


def tag_tasks(tag: Tag) -> list[Task]:
    """Every task of a tag with subtasks and dependencies prefetched (a constant number of queries)."""
    subs = Subtask.objects.select_related("parent").prefetch_related("dependencies").order_by("number")
    return list(
        Task.objects.filter(tag=tag)
        .prefetch_related("dependencies", Prefetch("subtasks", queryset=subs))
        .order_by("number")
    )


def graph_of(tasks: list[Task]) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for task in tasks:
        graph[task.ref] = task_deps(task)
        for sub in task.subtasks.all():
            graph[sub.ref] = subtask_deps(sub)
    return graph


def tag_graph(tag: Tag) -> dict[str, list[str]]:
    return graph_of(tag_tasks(tag))


def set_deps(item: WorkItem, refs: list[str], tasks_by_number: dict[int, Task]) -> None:
    """Store refs: same-level ones that resolve as M2M rows, the rest as cross refs."""
    same: list[WorkItem] = []
    cross: list[str] = []
    for ref in dict.fromkeys(refs):
        if isinstance(item, Task) and "." not in ref and ref.isdigit() and int(ref) in tasks_by_number:
            same.append(tasks_by_number[int(ref)])
            continue
        if isinstance(item, Subtask) and "." in ref:
            p, _, s = ref.partition(".")
            if p.isdigit() and s.isdigit() and int(p) == item.parent.number:
                sibling = next((x for x in item.parent.subtasks.all() if x.number == int(s)), None)
                if sibling is not None:
                    same.append(sibling)
                    continue
        cross.append(ref)
    item.dependencies.set(same)  # type: ignore[attr-defined]
    if item.cross_dependencies != cross:
        item.cross_dependencies = cross
        item.save(update_fields=["cross_dependencies"])


def _item_data(item: WorkItem, deps: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"number": item.number, **{f: getattr(item, f) for f in ITEM_FIELDS}}  # type: ignore[attr-defined]
    data["dependencies"] = deps
    return data


def snapshot(tag: Tag) -> dict[str, Any]:
    tasks = tag_tasks(tag)
    ids = [t.pk for t in tasks]
    reports: dict[int, list[dict[str, Any]]] = {}
    for r in ComplexityReport.objects.filter(task_id__in=ids).order_by("created_at", "pk"):
        reports.setdefault(r.task_id, []).append(
            {
                "score": r.score,
                "recommended_subtasks": r.recommended_subtasks,
                "expansion_prompt": r.expansion_prompt,
                "reasoning": r.reasoning,
                "model_name": r.model_name,
                "threshold": r.threshold,
                "call_id": r.call_id,
                "created_at": r.created_at.isoformat(),
            }
        )
    notes: dict[int, list[dict[str, Any]]] = {}
    for n in TaskNote.objects.filter(task_id__in=ids).order_by("created_at", "pk"):
        notes.setdefault(n.task_id, []).append(
            {
                "text": n.text,
                "citations": n.citations,
                "source_ref": n.source_ref,
                "author_id": n.author_id,
                "created_at": n.created_at.isoformat(),
            }
        )
    out = []
    for task in tasks:
        data = _item_data(task, task_deps(task))
        data["subtasks"] = [_item_data(s, subtask_deps(s)) for s in task.subtasks.all()]
        data["complexity"] = reports.get(task.pk, [])
        data["notes"] = notes.get(task.pk, [])
        out.append(data)
    return {"name": tag.name, "metadata": tag.metadata, "tasks": out}


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {f: data[f] for f in ITEM_FIELDS if f in data}


def restore(tag: Tag, snap: dict[str, Any]) -> None:
    """Make the tag's tasks exactly ``snap``; tasks kept by number keep their primary key.

    Call inside a transaction with the tag row locked.
    """
    from datetime import datetime

    wanted = {int(t["number"]): t for t in snap.get("tasks", [])}
    Task.objects.filter(tag=tag).exclude(number__in=wanted).delete()
    existing = {t.number: t for t in Task.objects.filter(tag=tag)}
    tasks: dict[int, Task] = {}
    for number, data in wanted.items():
        task = existing.get(number)
        if task is None:
            task = Task.objects.create(tag=tag, number=number, **_fields(data))
        else:
            for f, v in _fields(data).items():
                setattr(task, f, v)
            task.version += 1
            task.save()
        tasks[number] = task
        subs_wanted = {int(s["number"]): s for s in data.get("subtasks", [])}
        Subtask.objects.filter(parent=task).exclude(number__in=subs_wanted).delete()
        subs = {s.number: s for s in Subtask.objects.filter(parent=task)}
        for snum, sdata in subs_wanted.items():
            sub = subs.get(snum)
            if sub is None:
                Subtask.objects.create(parent=task, number=snum, **_fields(sdata))
            else:
                for f, v in _fields(sdata).items():
                    setattr(sub, f, v)
                sub.version += 1
                sub.save()
        task.complexity_reports.all().delete()
        for r in data.get("complexity", []):
            report = ComplexityReport.objects.create(task=task, **{k: v for k, v in r.items() if k != "created_at"})
            ComplexityReport.objects.filter(pk=report.pk).update(created_at=datetime.fromisoformat(r["created_at"]))
        task.notes.all().delete()
        for n in data.get("notes", []):
            note = TaskNote.objects.create(task=task, **{k: v for k, v in n.items() if k != "created_at"})
            TaskNote.objects.filter(pk=note.pk).update(created_at=datetime.fromisoformat(n["created_at"]))
    fresh = {t.number: t for t in tag_tasks(tag)}
    for number, data in wanted.items():
        task = fresh[number]
        set_deps(task, list(data.get("dependencies", [])), fresh)
        sdata = {int(s["number"]): s for s in data.get("subtasks", [])}
        for sub in task.subtasks.all():
            set_deps(sub, list(sdata[sub.number].get("dependencies", [])), fresh)
    if tag.metadata != snap.get("metadata", {}):
        tag.metadata = snap.get("metadata", {})
        tag.save(update_fields=["metadata"])


def comparable(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without fields that change on every restore, for "is it the same?" checks."""
    return {
        "metadata": snap.get("metadata", {}),
        "tasks": [
            {
                **{k: v for k, v in t.items() if k not in {"complexity", "notes"}},
                "complexity": [{k: v for k, v in r.items() if k != "created_at"} for r in t.get("complexity", [])],
                "notes": [{k: v for k, v in n.items() if k != "created_at"} for n in t.get("notes", [])],
            }
            for t in snap.get("tasks", [])
        ],
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-item changes for display: added, removed, and changed fields with old/new values."""

    def flatten(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
        items: dict[str, dict[str, Any]] = {}
        for t in snap.get("tasks", []):
            items[str(t["number"])] = {
                **{k: v for k, v in t.items() if k not in {"subtasks", "notes", "complexity"}},
                "complexity": [r.get("score") for r in t.get("complexity", [])],
                "notes": len(t.get("notes", [])),
            }
            for s in t.get("subtasks", []):
                items[f"{t['number']}.{s['number']}"] = dict(s)
        return items

    old, new = flatten(before), flatten(after)
    changes: list[dict[str, Any]] = []
    for ref in sorted(set(old) | set(new), key=_key):
        a, b = old.get(ref), new.get(ref)
        if a is None and b is not None:
            changes.append({"ref": ref, "kind": "added", "title": b.get("title", ""), "fields": []})
        elif b is None and a is not None:
            changes.append({"ref": ref, "kind": "removed", "title": a.get("title", ""), "fields": []})
        elif a is not None and b is not None and a != b:
            fields = [
                {"name": k, "old": a.get(k), "new": b.get(k)}
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k) and k != "number"
            ]
            changes.append({"ref": ref, "kind": "changed", "title": b.get("title", ""), "fields": fields})
    return changes
