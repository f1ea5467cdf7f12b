"""Every analytics page with the three users: owner, member, outsider (404); site admin sees all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics.models import Finding, Recommendation
from analytics.tasks import patterns_job
from taskmaster.models import Feedback, Job, LLMCall
from tests.analytics.seed import chat_model, make_call
from tests.conftest import Trio


@pytest.fixture
def ledger(trio: Trio) -> dict[str, Any]:
    mine = make_call(
        team=trio.team,
        user=trio.owner,
        model_name="model-a",
        feature="research.answer",
        ttft_ms=120.0,
        total_ms=800.0,
        routing={"strategy": "thompson", "reason": "highest sample"},
    )
    other = make_call(team=trio.other_team, user=trio.outsider, model_name="secret-model", feature="research.answer")
    up = Feedback.objects.create(
        team=trio.team,
        user=trio.owner,
        feature="research.answer",
        target="m:1",
        rating=1,
        comment="=HYPERLINK(bad)",
        call=mine,
    )
    down = Feedback.objects.create(
        team=trio.team, user=trio.member, feature="planning.expand", target="m:2", rating=-1, comment="wrong"
    )
    Feedback.objects.create(
        team=trio.other_team, user=trio.outsider, feature="research.answer", target="m:3", rating=-1, call=other
    )
    return {"mine": mine, "other": other, "up": up, "down": down}


def test_dashboard_for_owner_member_and_outsider(trio: Trio, ledger: dict[str, Any], client: Client) -> None:
    for user in (trio.owner, trio.member):
        client.force_login(user)
        page = client.get("/analytics/")
        assert page.status_code == 200
        body = page.content.decode()
        assert body.count("<svg") == 6 and "model-a" in body and "secret-model" not in body
        assert 'hx-trigger="every 5s"' in body
    client.force_login(trio.outsider)
    assert client.get("/analytics/", {"team": "alpha"}).status_code == 404
    own = client.get("/analytics/").content.decode()
    assert "secret-model" in own and "model-a" not in own
    assert client.get("/analytics/export/model.csv", {"team": "alpha"}).status_code == 404


def test_site_admin_sees_every_team_and_can_filter(trio: Trio, ledger: dict[str, Any], client: Client) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-12345")
    client.force_login(admin)
    body = client.get("/analytics/").content.decode()
    assert "model-a" in body and "secret-model" in body and "All teams" in body
    body = client.get("/analytics/", {"team": "beta"}).content.decode()
    assert "secret-model" in body and "<td>model-a</td>" not in body


def test_bad_filters_are_reported_not_fatal(trio: Trio, client: Client) -> None:
    client.force_login(trio.owner)
    page = client.get("/analytics/", {"period": "forever", "bucket": "week"})
    assert page.status_code == 200 and b"were not understood" in page.content
    fb = client.get("/analytics/feedback/", {"date_from": "31/01/2025"})
    assert fb.status_code == 200 and b"YYYY-MM-DD" in fb.content
    bad = client.get("/analytics/feedback/", {"date_from": "2025-02-01", "date_to": "2025-01-01", "format": "json"})
    assert bad.status_code == 400 and b"start date is after the end date" in bad.content


def test_now_panel(trio: Trio, client: Client) -> None:
    chat_model("model-a")
    client.force_login(trio.member)
    page = client.get("/analytics/now/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="now-panel"' in body and "model-a" in body and "llm.model-a" in body and 'data-stat="workers"' in body


def test_call_detail(trio: Trio, ledger: dict[str, Any], client: Client) -> None:
    url = f"/analytics/calls/{ledger['mine'].pk}/"
    for user in (trio.owner, trio.member):
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 200 and b"highest sample" in page.content
    client.force_login(trio.outsider)
    assert client.get(url).status_code == 404
    assert client.get("/analytics/calls/not-a-uuid/").status_code == 404


def test_feedback_browser_filters_and_exports(trio: Trio, ledger: dict[str, Any], client: Client) -> None:
    client.force_login(trio.member)
    page = client.get("/analytics/feedback/").content.decode()
    assert "wrong" in page and f"/analytics/calls/{ledger['mine'].pk}/" in page and "2 ratings" in page
    data = json.loads(client.get("/analytics/feedback/", {"format": "json", "rating": "-1"}).content)
    assert data["count"] == 1 and data["feedback"][0]["comment"] == "wrong"
    data = json.loads(client.get("/analytics/feedback/", {"format": "json", "model": "model-a"}).content)
    assert [f["call_id"] for f in data["feedback"]] == [str(ledger["mine"].pk)]
    data = json.loads(client.get("/analytics/feedback/", {"format": "json", "feature": "planning.expand"}).content)
    assert data["count"] == 1
    today = ledger["up"].created_at.date().isoformat()
    data = json.loads(
        client.get("/analytics/feedback/", {"format": "json", "date_from": today, "date_to": today}).content
    )
    assert data["count"] == 2
    data = json.loads(client.get("/analytics/feedback/", {"format": "json", "date_to": "2000-01-01"}).content)
    assert data["count"] == 0
    csv_body = client.get("/analytics/feedback/", {"format": "csv"}).content.decode()
    assert csv_body.splitlines()[0].startswith("id,created_at,team,user,feature")
    assert "'=HYPERLINK(bad)" in csv_body  # spreadsheet formulas are neutralised
    client.force_login(trio.outsider)
    assert client.get("/analytics/feedback/", {"team": "alpha"}).status_code == 404
    data = json.loads(client.get("/analytics/feedback/", {"format": "json"}).content)
    assert data["count"] == 1 and data["feedback"][0]["team"] == "beta"


def test_findings_page_run_now_and_permissions(
    trio: Trio, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(trio.outsider)
    assert client.post("/analytics/findings/run/", {"team": "alpha"}).status_code == 404
    client.force_login(trio.member)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/analytics/findings/run/", {"team": "alpha"})
    assert response.status_code == 302 and len(callbacks) == 1
    job = Job.objects.get(kind="analytics.patterns")
    assert job.team == trio.team and job.params == {"scope": "alpha"}
    patterns_job(job.pk)  # what the jobs worker runs
    page = client.get(response["Location"])
    assert page.status_code == 200 and b"Succeeded" in page.content
    finding = Finding.objects.create(
        team=trio.team,
        kind="failure_rate",
        subject="model=x",
        dims={"model": "x"},
        summary="model x: 50% of calls fail",
        evidence={"calls": 40},
        p_value=1e-7,
        effect_size=4.0,
        last_seen=job.created_at,
    )
    Recommendation.objects.create(finding=finding, action="advisory", title="Register another model", rationale="r")
    body = client.get("/analytics/findings/").content.decode()
    assert "model x: 50% of calls fail" in body and "Register another model" in body
    client.force_login(trio.outsider)
    assert "model x" not in client.get("/analytics/findings/").content.decode()
    assert client.post("/analytics/findings/run/", {"team": ""}).status_code == 302  # their own team
    assert Job.objects.filter(team=trio.other_team).count() == 1


def test_routing_pin_is_for_site_admins(trio: Trio, client: Client) -> None:
    chat_model("model-a")
    chat_model("model-b")
    client.force_login(trio.owner)
    assert client.post("/analytics/routing/pin/", {"role": "main", "model": "model-b"}).status_code == 403
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-12345")
    client.force_login(admin)
    page = client.get("/analytics/")
    assert b"Override for main" in page.content
    assert client.post("/analytics/routing/pin/", {"role": "main", "model": "model-b"}).status_code == 302
    assert b"pinned to model-b" in client.get("/analytics/").content
    assert LLMCall.objects.count() == 0


def test_user_without_a_team(db: None, client: Client) -> None:
    loner = get_user_model().objects.create_user("loner", "l@example.com", "pw-loner-12345")
    client.force_login(loner)
    for url in ("/analytics/", "/analytics/feedback/", "/analytics/findings/", "/analytics/revisions/"):
        page = client.get(url)
        assert page.status_code == 200 and b"not in a team yet" in page.content
