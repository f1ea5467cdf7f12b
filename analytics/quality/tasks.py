"""Celery wrapper of an evaluation run: takes the run id, idempotent (resumes unscored items)."""

from __future__ import annotations

from celery import shared_task

from analytics.quality.models import EvalRun
from analytics.quality.services import evalrun_execute


@shared_task(name="analytics.quality.eval_run", acks_late=True)
def eval_run(run_id: int) -> None:
    if not EvalRun.objects.filter(pk=run_id).exists():
        return  # deleted before it ran
    evalrun_execute(run_id=run_id)
