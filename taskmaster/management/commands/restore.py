"""manage.py restore ARCHIVE [--force]: restore a `manage.py backup` archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskmaster.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup archive into the configured database and MEDIA_ROOT. Checksums are verified first; "
        "a database or media folder that already holds data is refused unless --force. "
        "Stop the web processes and workers first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", help="A taskmaster-backup-*.tar.gz written by `manage.py backup`.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace a non-empty database (and move a non-empty MEDIA_ROOT aside) with the backup.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = backup_restore(archive=Path(options["archive"]), force=options["force"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Restored database {result.database} ({result.tables} tables) and {result.media_files} uploaded files."
        )
        if result.replaced_media:
            self.stdout.write(f"The previous uploads were moved to {result.replaced_media}.")
        if result.missing_model_files:
            self.stdout.write(
                "These registry models have no (or a different-sized) GGUF under MODELS_DIR; copy the files there "
                "before starting the inference workers: " + ", ".join(result.missing_model_files)
            )
        self.stdout.write("Run `manage.py migrate` if this code is newer than the backup.")
