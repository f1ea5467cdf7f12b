"""Writes of the planning app that need no model: projects, tags, tasks, dependencies, revisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.text import slugify

from planning import deps as deps_mod
from planning.models import PRD, Priority, Project, Revision, Status, Subtask, Tag, Task, TaskNote
from planning.snapshot import comparable, restore, set_deps, snapshot, tag_graph, tag_tasks
from taskmaster.models import Job, Team

TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
EDITABLE = ("title", "description", "details", "test_strategy", "priority", "status")


class EditConflict(Exception):
    """Someone saved the task after the editor loaded it; ``current`` is their version."""

    def __init__(self, current: Task | Subtask) -> None:
        super().__init__(
            f"{current} was changed by someone else while you were editing it (now version {current.version}). "
            "Your text is still in the form: compare it with the current values below and save again."
        )
        self.current = current


# --- revisions -------------------------------------------------------------------------


@dataclass
class Draft:
    summary: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    revision: Revision | None = None


@contextmanager
def recording(*, tag: Tag, user: User | None, workflow: str, job: Job | None = None) -> Iterator[Draft]:
    """Snapshot the tag around a block of changes and store the pair as a Revision.

    Must run inside ``transaction.atomic``; the tag row is locked so two workflows on
    the same tag cannot interleave their snapshots.
    """
    Tag.objects.select_for_update().get(pk=tag.pk)
    before = snapshot(tag)
    draft = Draft()
    yield draft
    tag.refresh_from_db()
    after = snapshot(tag)
    draft.revision = Revision.objects.create(
        tag=tag,
        user=user,
        workflow=workflow,
        summary=(draft.summary or workflow)[:500],
        snapshot_before=before,
        snapshot_after=after,
        job=job,
    )


@transaction.atomic
def revision_rollback(*, revision: Revision, user: User) -> Revision:
    """Restore the tag to just before ``revision``; the rollback is itself a revision."""
    revision = Revision.objects.select_for_update().get(pk=revision.pk)
    if revision.rolled_back_at is not None:
        raise ValidationError("This revision was already rolled back.")
    with recording(tag=revision.tag, user=user, workflow="rollback") as draft:
        restore(revision.tag, revision.snapshot_before)
        draft.summary = f"Rolled back “{revision.summary}” ({revision.workflow}, {revision.created_at:%Y-%m-%d %H:%M})"
    revision.rolled_back_at = timezone.now()
    revision.rolled_back_by = user  # type: ignore[assignment]
    revision.save(update_fields=["rolled_back_at", "rolled_back_by"])
    assert draft.revision is not None
    return draft.revision


def revision_is_current(revision: Revision) -> bool:
    """True when nothing changed the tag since this revision (rollback undoes exactly it)."""
    return comparable(snapshot(revision.tag)) == comparable(revision.snapshot_after)


# --- projects and tags --------------------------------------------------------------------


@transaction.atomic
def project_create(*, team: Team, name: str, description: str = "") -> Project:
    name = name.strip()[:100]
    if not name:
        raise ValidationError("A project needs a name.")
    base = slugify(name)[:50] or "project"
    slug, n = base, 2
    while Project.objects.filter(team=team, slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    project = Project.objects.create(team=team, name=name, slug=slug, description=description.strip())
    tag_create(project=project, name="master", description="Tasks for master context")
    return project


@transaction.atomic
def project_update(*, project: Project, complexity_threshold: int) -> Project:
    if not 1 <= complexity_threshold <= 10:
        raise ValidationError("The complexity threshold is a score from 1 to 10.")
    project.complexity_threshold = complexity_threshold
    project.save(update_fields=["complexity_threshold"])
    return project


def _check_tag_name(project: Project, name: str) -> str:
    name = name.strip()
    if not TAG_NAME.match(name):
        raise ValidationError(
            f"“{name}” is not a valid tag name: use 1 to 50 letters, digits, dots, dashes or underscores."
        )
    if Tag.objects.filter(project=project, name=name).exists():
        raise ValidationError(f"This project already has a tag named “{name}”.")
    return name


@transaction.atomic
def tag_create(*, project: Project, name: str, description: str = "") -> Tag:
    name = _check_tag_name(project, name)
    now = timezone.now().isoformat()
    return Tag.objects.create(
        project=project,
        name=name,
        metadata={"created": now, "updated": now, "description": description.strip() or f"Tasks for {name} context"},
    )


@transaction.atomic
def tag_copy(*, tag: Tag, name: str, user: User | None) -> Tag:
    """A new tag holding a copy of every task, subtask and dependency (not notes or reports)."""
    new = tag_create(project=tag.project, name=name, description=f"Copy of {tag.name}")
    snap = snapshot(tag)
    for t in snap["tasks"]:
        t["complexity"], t["notes"] = [], []
    with recording(tag=new, user=user, workflow="copy-tag") as draft:
        restore(new, {**snap, "metadata": new.metadata})
        draft.summary = f"Copied {len(snap['tasks'])} tasks from tag {tag.name}"
    return new


# --- tasks -------------------------------------------------------------------------------


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.strip() if isinstance(v, str) else v) for k, v in fields.items() if k in EDITABLE}
    if "title" in out and not out["title"]:
        raise ValidationError("A task needs a title.")
    if "title" in out:
        out["title"] = out["title"][:300]
    if "status" in out and out["status"] not in Status.values:
        raise ValidationError(f"Unknown status {out['status']!r}; use one of {', '.join(Status.values)}.")
    if "priority" in out and out["priority"] not in Priority.values:
        raise ValidationError(f"Unknown priority {out['priority']!r}; use one of {', '.join(Priority.values)}.")
    return out


def next_number(tag: Tag) -> int:
    return int(Task.objects.filter(tag=tag).aggregate(m=Max("number"))["m"] or 0) + 1


@transaction.atomic
def task_create(
    *,
    tag: Tag,
    title: str,
    description: str = "",
    details: str = "",
    test_strategy: str = "",
    priority: str = Priority.MEDIUM,
    dependencies: list[str] | None = None,
) -> Task:
    Tag.objects.select_for_update().get(pk=tag.pk)
    fields = _clean_fields(
        {
            "title": title,
            "description": description,
            "details": details,
            "test_strategy": test_strategy,
            "priority": priority,
        }
    )
    task = Task.objects.create(tag=tag, number=next_number(tag), **fields)
    for ref in dependencies or []:
        dependency_add(tag=tag, item_ref=task.ref, dep_ref=ref)
    return task


@transaction.atomic
def item_update(*, item: Task | Subtask, expected_version: int, fields: dict[str, Any]) -> Task | Subtask:
    """Save an edit only if nobody saved since ``expected_version`` was loaded (optimistic lock)."""
    clean = _clean_fields(fields)
    model = type(item)
    updated = model.objects.filter(pk=item.pk, version=expected_version).update(
        **clean, version=F("version") + 1, updated_at=timezone.now()
    )
    if not updated:
        raise EditConflict(model.objects.get(pk=item.pk))
    fresh = model.objects.get(pk=item.pk)
    if isinstance(fresh, Task) and clean.get("status") == Status.DONE:
        fresh.subtasks.exclude(status=Status.DONE).update(status=Status.DONE, version=F("version") + 1)
    return fresh


@transaction.atomic
def subtask_update(
    *,
    subtask: Subtask,
    expected_version: int,
    fields: dict[str, Any],
    sibling_dependencies: list[int],
    user: User | None,
) -> Subtask:
    """Edit a subtask's fields and its dependencies on siblings, as one revision.

    The same optimistic lock as tasks: a stale ``expected_version`` raises ``EditConflict``
    and nothing is written. Dependencies on other levels (``"4"``, ``"2.1"`` of another
    task) are not part of the form and are kept as they are.
    """
    parent = Task.objects.get(pk=subtask.parent_id)
    with recording(tag=parent.tag, user=user, workflow="edit-subtask") as draft:
        fresh = item_update(item=subtask, expected_version=expected_version, fields=fields)
        assert isinstance(fresh, Subtask)
        item, tasks, graph = _item_by_ref(parent.tag, fresh.ref)
        prefix = f"{parent.number}."
        kept = [r for r in graph[item.ref] if not r.startswith(prefix)]
        trial = {**graph, item.ref: list(kept)}
        for number in dict.fromkeys(sibling_dependencies):
            dep = f"{prefix}{number}"
            try:
                deps_mod.check_add(trial, item.ref, dep)
            except deps_mod.DependencyError as exc:
                raise ValidationError(str(exc)) from None
            trial[item.ref].append(dep)
        if trial[item.ref] != graph[item.ref]:
            set_deps(item, trial[item.ref], tasks)
        draft.summary = f"Edited subtask {fresh.ref}: {fresh.title}"[:500]
    return Subtask.objects.select_related("parent").get(pk=subtask.pk)


def _bump(item: Task | Subtask) -> None:
    type(item).objects.filter(pk=item.pk).update(version=F("version") + 1, updated_at=timezone.now())


@transaction.atomic
def item_set_status(*, item: Task | Subtask, status: str, user: User | None) -> list[str]:
    """Set a status; a task marked done takes its unfinished subtasks with it (one revision)."""
    if status not in Status.values:
        raise ValidationError(f"Unknown status {status!r}; use one of {', '.join(Status.values)}.")
    tag = item.tag if isinstance(item, Task) else item.parent.tag
    cascade = isinstance(item, Task) and status == Status.DONE and item.subtasks.exclude(status=Status.DONE).exists()
    if not cascade:
        type(item).objects.filter(pk=item.pk).update(status=status, version=F("version") + 1, updated_at=timezone.now())
        return [item.ref]
    assert isinstance(item, Task)
    with recording(tag=tag, user=user, workflow="set-status") as draft:
        subs = list(item.subtasks.exclude(status=Status.DONE))
        Task.objects.filter(pk=item.pk).update(status=status, version=F("version") + 1, updated_at=timezone.now())
        item.subtasks.exclude(status=Status.DONE).update(status=Status.DONE, version=F("version") + 1)
        draft.summary = f"Task {item.number} and {len(subs)} subtasks marked done"
    return [item.ref, *(f"{item.number}.{s.number}" for s in subs)]


@transaction.atomic
def task_delete(*, task: Task, user: User | None) -> Revision:
    with recording(tag=task.tag, user=user, workflow="delete-task") as draft:
        draft.summary = f"Deleted task {task.number}: {task.title}"[:500]
        task.delete()
    assert draft.revision is not None
    return draft.revision


@transaction.atomic
def subtask_create(
    *, task: Task, title: str, description: str = "", details: str = "", test_strategy: str = ""
) -> Subtask:
    Task.objects.select_for_update().get(pk=task.pk)
    fields = _clean_fields(
        {"title": title, "description": description, "details": details, "test_strategy": test_strategy}
    )
    number = int(task.subtasks.aggregate(m=Max("number"))["m"] or 0) + 1
    sub = Subtask.objects.create(parent=task, number=number, priority=task.priority, **fields)
    _bump(task)
    return sub


@transaction.atomic
def subtask_promote(*, subtask: Subtask, user: User | None) -> Task:
    """Turn a subtask into a task of its own (so it can be expanded in its turn)."""
    parent = subtask.parent
    with recording(tag=parent.tag, user=user, workflow="promote-subtask") as draft:
        graph = tag_graph(parent.tag)
        old_ref = subtask.ref
        task = Task.objects.create(
            tag=parent.tag,
            number=next_number(parent.tag),
            title=subtask.title,
            description=subtask.description,
            details=subtask.details,
            test_strategy=subtask.test_strategy,
            status=subtask.status,
            priority=subtask.priority,
            metadata={**subtask.metadata, "promoted_from": old_ref},
        )
        subtask.delete()
        tasks = {t.number: t for t in tag_tasks(parent.tag)}
        # Whatever pointed at "P.S" now points at the new task, and vice versa.
        for ref, refs in graph.items():
            holder = _find(tasks, ref) if old_ref in refs and ref != old_ref else None
            if holder is not None:
                set_deps(holder, [task.ref if r == old_ref else r for r in refs], tasks)
        own = [r for r in graph[old_ref] if r != parent.ref]
        set_deps(tasks[task.number], own, tasks)
        draft.summary = f"Promoted subtask {old_ref} to task {task.number}"
    return task


def _find(tasks: dict[int, Task], ref: str) -> Task | Subtask | None:
    p, _, s = ref.partition(".")
    if not p.isdigit() or int(p) not in tasks:
        return None
    task = tasks[int(p)]
    if not s:
        return task
    return next((x for x in task.subtasks.all() if str(x.number) == s), None)


# --- dependencies --------------------------------------------------------------------------


def _item_by_ref(tag: Tag, ref: str) -> tuple[Task | Subtask, dict[int, Task], dict[str, list[str]]]:
    tasks = {t.number: t for t in tag_tasks(tag)}
    item = _find(tasks, ref.strip())
    if item is None:
        raise ValidationError(f"Tag {tag.name} has no task or subtask {ref!r}.")
    from planning.snapshot import graph_of

    return item, tasks, graph_of(list(tasks.values()))


@transaction.atomic
def dependency_add(*, tag: Tag, item_ref: str, dep_ref: str) -> None:
    Tag.objects.select_for_update().get(pk=tag.pk)
    item, tasks, graph = _item_by_ref(tag, item_ref)
    dep_ref = dep_ref.strip().lstrip("#")
    try:
        deps_mod.check_add(graph, item.ref, dep_ref)
    except deps_mod.DependencyError as exc:
        raise ValidationError(str(exc)) from None
    set_deps(item, [*graph[item.ref], dep_ref], tasks)
    _bump(item)


@transaction.atomic
def dependency_remove(*, tag: Tag, item_ref: str, dep_ref: str) -> None:
    Tag.objects.select_for_update().get(pk=tag.pk)
    item, tasks, graph = _item_by_ref(tag, item_ref)
    if dep_ref not in graph[item.ref]:
        raise ValidationError(f"{item.ref} does not depend on {dep_ref}.")
    set_deps(item, [r for r in graph[item.ref] if r != dep_ref], tasks)
    _bump(item)


@transaction.atomic
def dependencies_fix(*, tag: Tag, user: User | None) -> tuple[Revision | None, list[deps_mod.Issue]]:
    """Remove missing, self, parent and circular dependencies; one revision when anything changed."""
    Tag.objects.select_for_update().get(pk=tag.pk)
    graph = tag_graph(tag)
    fixed, removed = deps_mod.fix(graph)
    if not removed:
        return None, []
    with recording(tag=tag, user=user, workflow="fix-dependencies") as draft:
        tasks = {t.number: t for t in tag_tasks(tag)}
        for ref in graph:
            if fixed[ref] != list(dict.fromkeys(graph[ref])):
                item = _find(tasks, ref)
                assert item is not None
                set_deps(item, fixed[ref], tasks)
                _bump(item)
        draft.summary = f"Fixed dependencies: removed {len(removed)}"
    return draft.revision, removed


# --- moving between tags ---------------------------------------------------------------------


@transaction.atomic
def tasks_move(*, source: Tag, target: Tag, numbers: list[int], user: User | None) -> dict[str, Any]:
    """Move tasks (with their subtasks) to another tag of the same project.

    Dependencies among the moved tasks follow them (renumbered if needed); dependencies
    that would cross tags are dropped on both sides and listed in the result.
    """
    if source.pk == target.pk:
        raise ValidationError("Choose a different tag to move the tasks to.")
    if source.project_id != target.project_id:
        raise ValidationError("Tasks can only move between tags of the same project.")
    for tag in sorted((source, target), key=lambda t: t.pk):
        Tag.objects.select_for_update().get(pk=tag.pk)
    src = snapshot(source)
    chosen = {n for n in numbers}
    missing = chosen - {t["number"] for t in src["tasks"]}
    if missing or not chosen:
        raise ValidationError(
            f"Tag {source.name} has no task {', '.join(map(str, sorted(missing)))}."
            if missing
            else "Choose at least one task to move."
        )
    moving = [t for t in src["tasks"] if t["number"] in chosen]
    staying = [t for t in src["tasks"] if t["number"] not in chosen]
    taken = set(Task.objects.filter(tag=target).values_list("number", flat=True))
    # Keep the numbers when they are free; otherwise number the moved tasks after the
    # target's last one, in their order, so their dependencies still point backwards.
    start = next_number(target)
    renumber = {t["number"]: (t["number"] if not chosen & taken else start + i) for i, t in enumerate(moving)}
    dropped: list[str] = []

    def remap(ref: str, owner: str) -> str | None:
        p, dot, s = ref.partition(".")
        if p.isdigit() and int(p) in renumber:
            return f"{renumber[int(p)]}{dot}{s}"
        dropped.append(f"{owner} → {ref}")
        return None

    for t in moving:
        old = t["number"]
        t["number"] = renumber[old]
        t["dependencies"] = [r for d in t["dependencies"] if (r := remap(d, str(old))) is not None]
        for s in t["subtasks"]:
            s["dependencies"] = [r for d in s["dependencies"] if (r := remap(d, f"{old}.{s['number']}")) is not None]
    for t in staying:
        for holder in [t, *t["subtasks"]]:
            keep = [
                d
                for d in holder["dependencies"]
                if not (d.partition(".")[0].isdigit() and int(d.partition(".")[0]) in chosen)
            ]
            dropped.extend(f"{d} ← {t['number']}" for d in holder["dependencies"] if d not in keep)
            holder["dependencies"] = keep
    summary = f"Moved {len(moving)} tasks from {source.name} to {target.name}"
    with recording(tag=source, user=user, workflow="move-tasks") as draft:
        restore(source, {**src, "tasks": staying})
        draft.summary = summary
    tgt = snapshot(target)
    with recording(tag=target, user=user, workflow="move-tasks") as draft:
        restore(target, {**tgt, "tasks": tgt["tasks"] + moving})
        draft.summary = summary
    return {"moved": renumber, "dropped_dependencies": dropped}


# --- notes and PRDs ----------------------------------------------------------------------------


def _clean_citations(citations: Any) -> list[dict[str, str]]:
    if not isinstance(citations, list) or len(citations) > 50:
        raise ValidationError("Citations must be a list of at most 50 objects with title, url and snippet.")
    out = []
    for i, c in enumerate(citations):
        if not isinstance(c, dict) or not all(isinstance(c.get(k, ""), str) for k in ("title", "url", "snippet")):
            raise ValidationError(f"citations[{i}]: expected an object with string title, url and snippet.")
        url = c.get("url", "").strip()
        if url and not re.match(r"^(https?://|/)", url):
            raise ValidationError(f"citations[{i}].url: only http(s) links or site paths are allowed.")
        out.append({"title": c.get("title", "")[:300], "url": url[:1000], "snippet": c.get("snippet", "")[:2000]})
    return out


@transaction.atomic
def task_note_add(
    *, task: Task, author: User | None, text: str, citations: Any = None, source_ref: str = ""
) -> TaskNote:
    text = text.strip()
    if not text:
        raise ValidationError("A note needs some text.")
    if len(text) > 20000:
        raise ValidationError("A note can be at most 20,000 characters.")
    return TaskNote.objects.create(
        task=task,
        author=author,
        text=text,
        citations=_clean_citations(citations or []),
        source_ref=source_ref.strip()[:100],
    )


@transaction.atomic
def prd_create(*, project: Project, title: str, text: str, file_name: str = "", user: User | None = None) -> PRD:
    text = text.strip()
    if not text:
        raise ValidationError("The PRD is empty: paste its text or upload a .md/.txt file.")
    if len(text) > 500_000:
        raise ValidationError("The PRD is longer than 500,000 characters.")
    title = title.strip() or (file_name or text.splitlines()[0]).strip()[:200] or "PRD"
    return PRD.objects.create(project=project, title=title[:200], text=text, file_name=file_name[:255], created_by=user)
