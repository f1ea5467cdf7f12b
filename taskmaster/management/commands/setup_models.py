from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from taskmaster.llm.defaults import prepare_files, register_defaults


class Command(BaseCommand):
    help = "Prepare the offline default models (copy SmolLM2, convert MiniLM to GGUF) and register them."

    def handle(self, *args: Any, **options: Any) -> None:
        # Registering needs the tables; on a fresh machine nothing has migrated yet.
        call_command("migrate", verbosity=0, interactive=False)
        try:
            prepared = prepare_files()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        for item in prepared:
            self.stdout.write(f"{item.name}: {item.action} ({item.path})")
        for model in register_defaults():
            state = "available" if model.available else f"UNAVAILABLE: {model.last_error}"
            self.stdout.write(f"registered {model.name} [{model.kind}] {state}")
