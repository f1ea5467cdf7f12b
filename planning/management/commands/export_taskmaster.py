"""Export a project's tags as a Task Master tasks.json (or one tag's complexity report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from planning.management.commands._common import find_project, find_team
from planning.models import Tag
from planning.services import complexity_export, taskmaster_export


class Command(BaseCommand):
    help = "Write a project's tasks as Task Master's tasks.json (tagged format unless --flat)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--team", required=True, help="team slug or name")
        parser.add_argument("--project", required=True, help="project slug or name")
        parser.add_argument("--tag", action="append", default=[], help="only this tag (repeatable)")
        parser.add_argument("--flat", action="store_true", help='old {"tasks": [...]} format (one tag)')
        parser.add_argument("--complexity", action="store_true", help="write the complexity report of --tag")
        parser.add_argument("-o", "--output", default="", help="file to write (default: stdout)")

    def handle(self, *args: Any, **opts: Any) -> None:
        team = find_team(opts["team"])
        project = find_project(team, opts["project"])
        if project is None:
            raise CommandError(f"No project {opts['project']!r} in team {team.slug}.")
        try:
            if opts["complexity"]:
                name = (opts["tag"] or ["master"])[0]
                tag = Tag.objects.filter(project=project, name=name).first()
                if tag is None:
                    raise CommandError(f"Project {project.name} has no tag {name!r}.")
                data = complexity_export(tag=tag)
            else:
                data = taskmaster_export(project=project, tag_names=opts["tag"] or None, flat=opts["flat"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if opts["output"]:
            Path(opts["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {opts['output']}")
        else:
            self.stdout.write(text, ending="")
