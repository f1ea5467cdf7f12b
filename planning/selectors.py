"""Reads of the planning app: the ``<thing>_for`` helpers (404 for outsiders) and page data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, QuerySet

from planning import deps
from planning.models import PRD, ComplexityReport, Project, Revision, Status, Subtask, Tag, Task, TaskNote
from planning.snapshot import graph_of, tag_tasks
from taskmaster.access import Perm, get_scoped, scoped
from taskmaster.models import Team

AnyUser = User | AnonymousUser


def project_for(user: AnyUser, perm: Perm, **lookup: Any) -> Project:
    return get_scoped(Project.objects.select_related("team"), user, perm, **lookup)


def tag_for(user: AnyUser, perm: Perm, **lookup: Any) -> Tag:
    return get_scoped(Tag.objects.select_related("project__team"), user, perm, team_path="project__team", **lookup)


def task_for(user: AnyUser, perm: Perm, **lookup: Any) -> Task:
    return get_scoped(
        Task.objects.select_related("tag__project__team"), user, perm, team_path="tag__project__team", **lookup
    )


def subtask_for(user: AnyUser, perm: Perm, **lookup: Any) -> Subtask:
    return get_scoped(
        Subtask.objects.select_related("parent__tag__project__team"),
        user,
        perm,
        team_path="parent__tag__project__team",
        **lookup,
    )


def revision_for(user: AnyUser, perm: Perm, **lookup: Any) -> Revision:
    return get_scoped(
        Revision.objects.select_related("tag__project__team", "user"),
        user,
        perm,
        team_path="tag__project__team",
        **lookup,
    )


def prd_for(user: AnyUser, perm: Perm, **lookup: Any) -> PRD:
    return get_scoped(PRD.objects.select_related("project__team"), user, perm, team_path="project__team", **lookup)


def task_note_for(user: AnyUser, perm: Perm, **lookup: Any) -> TaskNote:
    return get_scoped(
        TaskNote.objects.select_related("task__tag__project__team"),
        user,
        perm,
        team_path="task__tag__project__team",
        **lookup,
    )


def projects_list(user: AnyUser, team: Team | None) -> QuerySet[Project]:
    qs = scoped(Project.objects.all(), user, Perm.VIEW)
    if team is not None:
        qs = qs.filter(team=team)
    return qs.annotate(n_tags=Count("tags", distinct=True)).order_by("name")


def default_tag(project: Project) -> Tag:
    tag = project.tags.filter(name="master").first() or project.tags.order_by("created_at").first()
    if tag is None:
        from planning.services import tag_create

        tag = tag_create(project=project, name="master")
    return tag


def latest_reports(tag: Tag) -> dict[int, ComplexityReport]:
    """task pk → its newest complexity report."""
    latest: dict[int, ComplexityReport] = {}
    for r in ComplexityReport.objects.filter(task__tag=tag).order_by("created_at", "pk"):
        latest[r.task_id] = r
    return latest


@dataclass
class Row:
    task: Task
    deps: list[str]
    report: ComplexityReport | None
    subtasks_done: int
    subtasks_total: int


def task_rows(
    tag: Tag, *, status: str = "", priority: str = "", query: str = "", tasks: list[Task] | None = None
) -> list[Row]:
    """``tasks``: the tag's ``tag_tasks()`` when the caller already loaded them (one page, one load)."""
    tasks = tag_tasks(tag) if tasks is None else tasks
    graph = graph_of(tasks)
    reports = latest_reports(tag)
    rows = []
    for t in tasks:
        if status and t.status != status:
            continue
        if priority and t.priority != priority:
            continue
        if query and query.lower() not in f"{t.title} {t.description}".lower():
            continue
        subs = list(t.subtasks.all())
        rows.append(Row(t, graph[t.ref], reports.get(t.pk), sum(s.status == Status.DONE for s in subs), len(subs)))
    return rows


def board_columns(tag: Tag) -> list[tuple[str, str, list[Row]]]:
    rows = task_rows(tag)
    return [(value, label, [r for r in rows if r.task.status == value]) for value, label in Status.choices]


def dependency_issues(tag: Tag, *, tasks: list[Task] | None = None) -> list[deps.Issue]:
    return deps.validate(graph_of(tag_tasks(tag) if tasks is None else tasks))


def next_task(tag: Tag, *, tasks: list[Task] | None = None) -> tuple[Task | Subtask | None, list[str]]:
    """The next item by the documented rule (see planning.deps.next_item), and its dependencies."""
    tasks = tag_tasks(tag) if tasks is None else tasks
    graph = graph_of(tasks)
    items = []
    objects: dict[str, Task | Subtask] = {}
    for t in tasks:
        items.append(deps.Item(t.ref, t.status, t.priority, graph[t.ref], t.title))
        objects[t.ref] = t
        for s in t.subtasks.all():
            items.append(deps.Item(s.ref, s.status, s.priority, graph[s.ref], s.title))
            objects[s.ref] = s
    chosen = deps.next_item(items)
    return (objects[chosen.ref], graph[chosen.ref]) if chosen else (None, [])


def tag_revisions(tag: Tag) -> QuerySet[Revision]:
    return (
        Revision.objects.filter(tag=tag)
        .select_related("user", "rolled_back_by")
        .defer("snapshot_before", "snapshot_after")
    )


def project_prds(project: Project) -> QuerySet[PRD]:
    return PRD.objects.filter(project=project).defer("text")
