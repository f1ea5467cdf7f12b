"""manage.py backup [--output DIR]: database, model registry manifest and uploads in one tar.gz."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskmaster.backup import BackupError, backup_create


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump -Fc), the model registry manifest and uploaded sources (MEDIA_ROOT) "
        "into one tar.gz. GGUF model files are not included: keep them (or their source) separately."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            default="",
            help="Folder for the archive (default: DATA_DIR/backups). Prints the archive path on stdout.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        output = Path(options["output"]) if options["output"] else Path(settings.DATA_DIR) / "backups"
        try:
            result = backup_create(output_dir=output)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        files = result.manifest["files"]
        self.stderr.write(
            f"Backed up database {result.manifest['database']['name']} "
            f"({files['db.dump']['size'] / 2**20:.1f} MiB dump), "
            f"{result.manifest['media_files']} uploaded files and the model registry manifest."
        )
        self.stdout.write(str(result.path))
