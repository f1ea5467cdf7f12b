"""Small builders shared by the planning tests."""

from __future__ import annotations

from pathlib import Path

from planning.models import Project, Tag, Task
from planning.services import project_create, taskmaster_import
from taskmaster.models import Team

FIXTURES = Path(__file__).parent / "fixtures"


def make_project(team: Team, name: str = "Invoicing") -> Project:
    return project_create(team=team, name=name)


def master(project: Project) -> Tag:
    return Tag.objects.get(project=project, name="master")


def imported(team: Team, user: object = None) -> Project:
    project = make_project(team)
    taskmaster_import(project=project, raw=(FIXTURES / "tasks.json").read_bytes(), user=None)
    return project


def add_tasks(tag: Tag, *titles: str) -> list[Task]:
    from planning.services import task_create

    return [task_create(tag=tag, title=t) for t in titles]
