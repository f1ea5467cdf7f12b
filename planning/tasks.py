"""Celery wrapper of the planning workflows: takes a job id, idempotent, calls services."""

from __future__ import annotations

import traceback

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from planning.models import Revision
from planning.tmformat import FormatError
from taskmaster.llm import LLMError
from taskmaster.models import Job
from taskmaster.services import job_fail, job_start, job_succeed


@shared_task(name="planning.run_workflow", acks_late=True)
def run_workflow(job_id: int) -> None:
    from planning.services import workflow_run

    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return
    job_start(job_id=job_id, message="Starting…")
    try:
        revision, summary, result = workflow_run(job_id=job_id)
    except IntegrityError:
        # Another delivery of this same job applied its revision first: that result stands.
        done = Revision.objects.filter(job_id=job_id).first()
        if done is None:
            job_fail(job_id=job_id, error="A concurrent change conflicted; nothing was changed. Try again.")
        else:
            job_succeed(job_id=job_id, message=done.summary, revision_ref=f"planning.revision:{done.pk}")
    except LLMError as exc:
        job_fail(job_id=job_id, error=f"The model could not finish ({exc.error_class}): {exc}. Nothing was changed.")
    except (ValidationError, FormatError) as exc:
        text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        job_fail(job_id=job_id, error=f"{text} Nothing was changed.")
    except Exception:  # noqa: BLE001 - the job page must say what broke rather than spin forever
        job_fail(job_id=job_id, error="Unexpected error; nothing was changed.\n" + traceback.format_exc(limit=5))
    else:
        ref = f"planning.revision:{revision.pk}" if revision is not None else ""
        job_succeed(job_id=job_id, result=result, message=summary, revision_ref=ref)
