"""manage.py ingest PATH... --team SLUG --collection SLUG: index files or folders and wait."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from research import services
from research.models import Collection
from taskmaster.models import Job, Team


class Command(BaseCommand):
    help = "Add files or folders to a research collection (created when missing), index them and wait."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="files or folders")
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--collection", required=True, help="collection slug (created when missing)")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the job")

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"no team with slug {options['team']!r}")
        paths = [Path(p).expanduser().resolve() for p in options["paths"]]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"not found: {', '.join(missing)}")
        with transaction.atomic():
            collection = Collection.objects.filter(team=team, slug=options["collection"]).first()
            if collection is None:
                collection = services.collection_create(
                    team=team, name=options["collection"], slug=options["collection"]
                )
                self.stdout.write(f"Created collection {collection.slug} in {team.slug}.")
            sources = []
            for path in paths:
                try:
                    if path.is_dir():
                        sources.append(self._folder(collection, path))
                    else:
                        with path.open("rb") as fh:
                            sources.append(
                                services.source_add_upload(
                                    collection=collection,
                                    user=None,
                                    upload=File(fh, name=path.name),  # type: ignore[arg-type]
                                )
                            )
                except ValidationError as exc:
                    raise CommandError(f"{path}: {' '.join(exc.messages)}") from None
            for source in sources:
                if source.status == "failed":
                    self.stderr.write(f"{source.name}: {source.error}")
            pending = [s.pk for s in sources if s.status == "pending"]
            job = services.ingest_start(collection=collection, user=None, source_ids=pending) if pending else None
        if job is None:
            raise CommandError("nothing to index")
        self.stdout.write(f"Indexing job {job.pk} queued; waiting for a jobs worker…")
        job = self._wait(job.pk, options["timeout"])
        self.stdout.write(job.message)
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"indexing {job.status}: {job.error or job.message}")
        result = job.result
        self.stdout.write(
            self.style.SUCCESS(
                f"{collection.slug}: {result.get('added', 0)} added, {result.get('updated', 0)} re-indexed, "
                f"{result.get('unchanged', 0)} unchanged, {result.get('duplicates', 0)} duplicates, "
                f"{len(result.get('failures', []))} failed, {result.get('chunks', 0)} chunks"
            )
        )

    def _folder(self, collection: Collection, path: Path) -> Any:
        from research.models import Source

        return Source.objects.create(collection=collection, kind=Source.Kind.FOLDER, name=path.name, path=str(path))

    def _wait(self, job_id: int, timeout: float) -> Job:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            job = Job.objects.get(pk=job_id)
            if job.message and job.message != last:
                last = job.message
                self.stdout.write(f"  {job.done}/{job.total} {job.message}")
            if job.finished:
                return job
            if time.monotonic() > deadline:
                raise CommandError(f"job {job_id} did not finish within {timeout:.0f} s (is a jobs worker running?)")
            time.sleep(0.5)
