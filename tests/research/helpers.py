"""Helpers for research tests: add sources through the services and wait for the real job."""

from __future__ import annotations

import time

from django.core.files.uploadedfile import SimpleUploadedFile

from research import services
from research.models import Collection, Source
from taskmaster.models import Job


def wait_job(job: Job, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} did not finish: {job.status} {job.message}")


def upload(collection: Collection, files: dict[str, bytes], user: object = None) -> tuple[list[Source], Job]:
    sources = [
        services.source_add_upload(collection=collection, user=user, upload=SimpleUploadedFile(name, data))  # type: ignore[arg-type]
        for name, data in files.items()
    ]
    pending = [s.pk for s in sources if s.status == "pending"]
    job = services.ingest_start(collection=collection, user=user, source_ids=pending)  # type: ignore[arg-type]
    job = wait_job(job)
    for s in sources:
        s.refresh_from_db()
    return sources, job


def add_texts(collection: Collection, texts: dict[str, str]) -> Job:
    ids = [services.source_add_text(collection=collection, user=None, title=t, text=x).pk for t, x in texts.items()]
    return wait_job(services.ingest_start(collection=collection, user=None, source_ids=ids))
