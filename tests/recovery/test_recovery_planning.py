"""Done when: a worker killed during a PRD parse recovers or fails with a clear message, no partial tasks."""

from __future__ import annotations

import time

from planning.models import Revision, Tag, Task
from planning.services import prd_create, project_create
from planning.services.ai import workflow_start
from recovery.models import Cause, Incident, Recovery
from taskmaster.models import Job
from tests.conftest import Trio, Workers
from tests.recovery.test_recovery_live import _kill_when_started


def test_a_worker_killed_during_a_prd_parse_recovers_or_fails_cleanly(llm: Workers, trio: Trio) -> None:
    project = project_create(team=trio.team, name="Todo")
    tag = Tag.objects.get(project=project, name="master")
    prd = prd_create(project=project, title="Todo", text="# Todo app\nUsers add todo items and mark them done.")
    killer = _kill_when_started(llm, delay=2.0)
    job = workflow_start(
        kind="planning.parse_prd", tag=tag, user=trio.owner, params={"prd_id": prd.pk, "num_tasks": 2, "mode": "append"}
    )
    deadline = time.monotonic() + 270
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.3)
        job.refresh_from_db()
    killer.join()
    assert job.finished, (job.status, job.message)
    recovery = Recovery.objects.select_related("incident").get(incident__cause=Cause.WORKER_LOST)
    assert recovery.incident.team == trio.team and recovery.incident.feature == "planning.parse_prd"
    assert recovery.steps.first().action == "reroute"  # type: ignore[union-attr]
    tasks = list(Task.objects.filter(tag=tag).order_by("number"))
    if job.status == Job.Status.SUCCEEDED:
        assert [t.number for t in tasks] == [1, 2] and len({t.title.casefold() for t in tasks}) == 2
        assert Revision.objects.filter(job=job).count() == 1
        deadline = time.monotonic() + 15
        while recovery.outcome == Recovery.Outcome.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
            recovery.refresh_from_db()
        assert recovery.outcome == Recovery.Outcome.RECOVERED and recovery.seconds is not None
    else:
        # Failed cleanly: the user is told why, nothing was applied, and the failure is on file.
        assert job.status == Job.Status.FAILED
        assert "Nothing was changed" in job.error and "automatic recovery" in job.error.lower(), job.error
        assert tasks == [] and not Revision.objects.filter(job=job).exists()
        recovery.refresh_from_db()
        assert recovery.outcome == Recovery.Outcome.FAILED
        assert Incident.objects.filter(feature="planning.parse_prd", evidence__job_id=job.pk).exists()
