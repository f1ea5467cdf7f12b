"""Run an evaluation suite from the shell and print its scores as JSON.

    manage.py run_eval SUITE [--model NAME] [--team SLUG] [--max-tokens N] [--k N]
    manage.py run_eval --install-builtin --team SLUG

SUITE is a suite id or name. The run is synchronous (no jobs worker needed; the
inference worker must be up) and is stored like any other run, so it appears in the
suite's trend and can be compared in the browser.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.quality import services
from analytics.quality.models import EvalRun, Suite
from taskmaster.models import Team


class Command(BaseCommand):
    help = "Run an evaluation suite synchronously and print the scores as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("suite", nargs="?", help="suite id or name")
        parser.add_argument("--model", default="", help="chat model name (default: the role's model)")
        parser.add_argument("--team", default="", help="team slug (needed when names repeat across teams)")
        parser.add_argument("--max-tokens", type=int, default=None)
        parser.add_argument("--k", type=int, default=None, help="passages retrieved (research suites)")
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument(
            "--install-builtin", action="store_true", help="install the built-in suites (and index the docs) first"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        team = None
        if opts["team"]:
            team = Team.objects.filter(slug=opts["team"]).first()
            if team is None:
                raise CommandError(f"No team with slug {opts['team']!r}.")
        if opts["install_builtin"]:
            if team is None:
                raise CommandError("--install-builtin needs --team SLUG.")
            suites, _ = services.builtin_install(team=team, user=None, ingest="sync")
            self.stderr.write("Installed: " + ", ".join(f"{s.pk} {s.name}" for s in suites))
            if not opts["suite"]:
                return
        if not opts["suite"]:
            raise CommandError("Name a suite (id or name), or pass --install-builtin.")
        suite = self._suite(opts["suite"], team)
        config = {"model": opts["model"], "max_tokens": opts["max_tokens"], "k": opts["k"]}
        config["temperature"] = opts["temperature"]
        try:
            run = services.evalrun_create(suite=suite, user=None, config=config, enqueue=False)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        run = services.evalrun_execute(run_id=run.pk)
        if run.status != EvalRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        out = {
            "run": run.pk,
            "suite": suite.name,
            "kind": suite.kind,
            "model_name": run.model_name,
            "config": run.config,
        }
        self.stdout.write(json.dumps({**out, **run.scores}, indent=2, sort_keys=True))

    def _suite(self, ref: str, team: Team | None) -> Suite:
        qs = Suite.objects.all() if team is None else Suite.objects.filter(team=team)
        matches = list(qs.filter(pk=int(ref))) if ref.isdigit() else list(qs.filter(name=ref))
        if not matches:
            raise CommandError(f"No suite {ref!r}" + (f" in team {team.slug}." if team else "."))
        if len(matches) > 1:
            raise CommandError(f"Several teams have a suite named {ref!r}; pass --team SLUG.")
        return matches[0]
