from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from taskmaster.llm.registry import active_queues


class Command(BaseCommand):
    help = "Start a Celery inference worker consuming the queues of the enabled models (or --queues)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", default="", help="Comma-separated queues (default: every enabled model's).")
        parser.add_argument("--name", default="inference", help="Worker node name prefix.")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = options["queues"] or ",".join(active_queues()) or "llm.default"
        self.stdout.write(f"inference worker consuming: {queues}")
        # One process, one generation at a time: the queue is the fair FIFO, and
        # nobody's stream is slowed by another's sharing the same cores.
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "taskmaster",
            "worker",
            "-Q",
            queues,
            "-c",
            "1",
            "--prefetch-multiplier",
            "1",
            "-n",
            f"{options['name']}@%h",
            "-l",
            options["loglevel"],
            "--without-mingle",
            "--without-gossip",
        ]
        os.execv(sys.executable, argv)  # noqa: S606 - become the worker, so signals reach Celery itself
