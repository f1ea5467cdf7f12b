"""Import a Task Master tasks.json (tagged or flat) or task-complexity-report*.json into a project."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from planning.management.commands._common import find_project, find_team
from planning.models import Tag
from planning.services import complexity_import, project_create, taskmaster_import
from planning.tmformat import FormatError, loads


class Command(BaseCommand):
    help = "Import .taskmaster/tasks/tasks.json or a task-complexity-report*.json into a project (atomic)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="tasks.json or task-complexity-report*.json")
        parser.add_argument("--team", required=True, help="team slug or name")
        parser.add_argument("--project", required=True, help="project slug or name (created when missing)")
        parser.add_argument(
            "--tag",
            default="",
            help="tag for a flat tasks.json or a complexity report "
            "(default: master, or the report file name's _<tag> suffix)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        team = find_team(opts["team"])
        raw = path.read_bytes()
        try:
            data = loads(raw)
            project = find_project(team, opts["project"])
            if isinstance(data, dict) and "complexityAnalysis" in data:
                if project is None:
                    raise CommandError(f"No project {opts['project']!r} in team {team.slug}; import tasks.json first.")
                match = re.match(r"task-complexity-report_(.+)\.json$", path.name)
                name = opts["tag"] or (match.group(1) if match else "master")
                tag = Tag.objects.filter(project=project, name=name).first()
                if tag is None:
                    raise CommandError(f"Project {project.name} has no tag {name!r}.")
                n = complexity_import(tag=tag, raw=raw, user=None)
                self.stdout.write(f"{tag.name}: {n} complexity entries")
                return
            if project is None:
                project = project_create(team=team, name=opts["project"])
            tags = taskmaster_import(project=project, raw=raw, user=None, flat_tag=opts["tag"] or "master")
        except FormatError as exc:
            raise CommandError(f"{path}: nothing imported: {exc}") from None
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        for tag in tags:
            self.stdout.write(f"{tag.name}: {tag.tasks.count()} tasks")
        self.stdout.write(self.style.SUCCESS(f"Imported into {team.slug}/{project.slug}."))
