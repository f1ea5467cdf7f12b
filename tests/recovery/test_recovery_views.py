"""Incident pages with the three users: owner and member see their team's incidents, outsiders get 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from recovery import services
from recovery.models import Cause, Incident
from tests.conftest import Trio

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _incidents(trio: Trio) -> tuple[Incident, Incident, Incident]:
    ours = services.incident_record(
        cause=Cause.TRUNCATED, team_id=trio.team.pk, feature="planning.expand", model_name="m", message="ours"
    )
    theirs = services.incident_record(
        cause=Cause.TIMEOUT, team_id=trio.other_team.pk, feature="research.answer", model_name="m", message="theirs"
    )
    site = services.incident_record(cause=Cause.WORKER_LOST, team_id=None, feature="embed", message="site-wide")
    recovery = services.recovery_start(incident=ours, first_call_id="", plan=["raise_tokens", "give_up"])
    step = services.step_add(recovery=recovery, action="raise_tokens", params={"max_tokens": 64}, detail="8 → 64")
    services.step_finish(step_id=step.pk, ok=True)
    return ours, theirs, site


def test_the_list_shows_only_the_users_teams(trio: Trio) -> None:
    ours, theirs, site = _incidents(trio)
    for user in (trio.owner, trio.member):
        page = _client(user).get(reverse("recovery:index")).content.decode()
        assert reverse("recovery:incident", args=[ours.pk]) in page
        assert reverse("recovery:incident", args=[theirs.pk]) not in page
        assert reverse("recovery:incident", args=[site.pk]) not in page
        assert "<svg" in page  # the recovery-time charts
    page = _client(trio.outsider).get(reverse("recovery:index")).content.decode()
    assert reverse("recovery:incident", args=[ours.pk]) not in page
    filtered = _client(trio.owner).get(reverse("recovery:index"), {"cause": "timeout"}).content.decode()
    assert reverse("recovery:incident", args=[ours.pk]) not in filtered
    assert Client().get(reverse("recovery:index")).status_code == 302


def test_the_detail_page_shows_cause_plan_steps_and_recovery_time(trio: Trio) -> None:
    ours, theirs, site = _incidents(trio)
    for user in (trio.owner, trio.member):
        response = _client(user).get(reverse("recovery:incident", args=[ours.pk]))
        page = response.content.decode()
        assert response.status_code == 200
        assert (
            "Output truncated" in page and "Raise the token budget" in page and "Switch to the fallback model" in page
        )
        assert "Recovered" in page and "8 → 64" in page and "recovery time" in page
    assert _client(trio.outsider).get(reverse("recovery:incident", args=[ours.pk])).status_code == 404
    assert _client(trio.owner).get(reverse("recovery:incident", args=[theirs.pk])).status_code == 404
    # Incidents without a team are for site admins only.
    assert _client(trio.owner).get(reverse("recovery:incident", args=[site.pk])).status_code == 404
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    assert _client(admin).get(reverse("recovery:incident", args=[site.pk])).status_code == 200
    assert (
        reverse("recovery:incident", args=[site.pk]) in _client(admin).get(reverse("recovery:index")).content.decode()
    )


def test_resolving_needs_edit_rights_and_a_new_failure_opens_a_new_incident(trio: Trio) -> None:
    ours, _, site = _incidents(trio)
    url = reverse("recovery:incident_resolve", args=[ours.pk])
    assert _client(trio.outsider).post(url).status_code == 404
    assert _client(trio.owner).post(reverse("recovery:incident_resolve", args=[site.pk])).status_code == 404
    response = _client(trio.member).post(url, follow=True)
    assert "Incident resolved" in response.content.decode()
    ours.refresh_from_db()
    assert ours.status == Incident.Status.RESOLVED and ours.resolved_by == trio.member
    again = _client(trio.member).post(url, follow=True)
    assert "already resolved" in again.content.decode()
    assert _client(trio.member).get(url).status_code == 405
    new = services.incident_record(
        cause=Cause.TRUNCATED, team_id=trio.team.pk, feature="planning.expand", model_name="m", message="again"
    )
    assert new.pk != ours.pk and new.count == 1
