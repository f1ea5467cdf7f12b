"""Celery wrappers: take ids, idempotent, call services."""

from __future__ import annotations

from celery import shared_task

from research.ingest import ingest_run


@shared_task(name="research.ingest_collection", acks_late=True)
def ingest_collection(job_id: int) -> None:
    ingest_run(job_id=job_id)
