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


# A large model takes far longer than the default 10-minute limit; late acks mean a
# worker killed mid-download re-runs the task, and hf_hub_download resumes the file.
@shared_task(
    name="llm.model_download",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=12 * 3600,
    time_limit=12 * 3600 + 60,
)
def llm_model_download(model_id: int, job_id: int | None = None) -> None:
    from taskmaster.llm.acquire import model_download_hf

    model_download_hf(model_id=model_id, job_id=job_id)
