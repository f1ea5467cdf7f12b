"""Celery wrappers: the on-demand pattern job and the nightly beat job."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from analytics import patterns, services
from analytics.models import Recommendation
from taskmaster.models import Job, LLMCall, Team
from taskmaster.services import job_fail

log = logging.getLogger(__name__)


@shared_task(name="analytics.patterns_job")
def patterns_job(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return  # re-delivered after it finished: nothing to do
    team = None if job.params.get("scope") == "all" else job.team
    try:
        services.patterns_run(team=team, job_id=job_id)
    except Exception as exc:
        log.exception("pattern run %s failed", job_id)
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(name="analytics.patterns_nightly")
def patterns_nightly() -> dict[str, int]:
    """Site-wide findings, per-team findings for teams with recent calls, then "did it help?" checks."""
    since = timezone.now() - timedelta(days=patterns.WINDOW_DAYS)
    found = len(services.patterns_run(team=None))
    team_ids = LLMCall.objects.filter(created_at__gte=since, team__isnull=False).values_list("team_id", flat=True)
    for team in Team.objects.filter(pk__in=team_ids.distinct()):
        found += len(services.patterns_run(team=team))
    checked = 0
    for rec in Recommendation.objects.filter(status=Recommendation.Status.APPLIED):
        services.recommendation_evaluate(recommendation=rec)
        checked += 1
    return {"findings": found, "evaluated": checked}


# Celery autodiscovers analytics.tasks only; the evaluation task lives in the quality module.
from analytics.quality import tasks as quality_tasks  # noqa: E402,F401
