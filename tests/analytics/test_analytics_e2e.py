"""End to end with the real runtime: routed calls record their decision; "run now" runs on the jobs worker."""

from __future__ import annotations

import time

from django.test import Client
from django.utils import timezone

from analytics import router
from taskmaster.llm import CallContext, generate
from taskmaster.llm.defaults import CHAT_NAME
from taskmaster.models import Job, LLMCall, LLMModel
from tests.conftest import Trio, Workers


def test_routed_calls_log_the_decision_and_the_job_runs_on_the_worker(llm: Workers, trio: Trio) -> None:
    chat = LLMModel.objects.get(name=CHAT_NAME)
    # A second registry entry for the same weights, served by the same worker queue: two candidates.
    LLMModel.objects.create(
        name="smollm2-twin",
        kind="chat",
        file_path=chat.file_path,
        sha256=chat.sha256,
        context_length=chat.context_length,
        roles=["main"],
        queue=chat.queue_name,
        available=True,
        verified_at=timezone.now(),
    )
    router.clear_cache()
    ctx = CallContext(feature="analytics.e2e", team_id=trio.team.pk, user_id=trio.owner.pk)
    ids = [generate([{"role": "user", "content": "Say hi."}], max_tokens=8, context=ctx).request_id for _ in range(2)]
    for row in LLMCall.objects.filter(pk__in=ids):
        assert row.model_name in {CHAT_NAME, "smollm2-twin"}
        decision = router.decision_of(row)
        assert decision["strategy"] in {"thompson", "explore"} and decision["reason"]
        assert set(decision["candidates"]) == {CHAT_NAME, "smollm2-twin"}
        assert decision.get("model", row.model_name) == row.model_name
    page = Client()
    page.force_login(trio.member)
    assert (
        b"Thompson" in page.get(f"/analytics/calls/{ids[0]}/").content
        or b"exploration" in page.get(f"/analytics/calls/{ids[0]}/").content
    )
    router.clear_cache()

    client = Client()
    client.force_login(trio.owner)
    response = client.post("/analytics/findings/run/", {"team": "alpha"})
    assert response.status_code == 302
    job = Job.objects.get(kind="analytics.patterns")
    deadline = time.monotonic() + 60
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.3)
        job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert "finding" in job.message
