"""Celery task of the inference workers: one request, published to its channel group."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from taskmaster.llm.worker import run_generation


# acks_late with reject_on_worker_lost=False: a request whose worker was killed is not
# re-run behind the back of a client that has already been told it failed.
@shared_task(name="llm.run", acks_late=True, reject_on_worker_lost=False, ignore_result=True)
def llm_run(payload: dict[str, Any]) -> None:
    run_generation(payload)
