"""Team pages and the permission helpers, with the same three users everywhere."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.test import Client
from django.urls import reverse

from taskmaster.access import Perm, can, team_for, teams_for
from taskmaster.models import Invitation, Membership, Role
from tests.conftest import Trio


def _client(user: object) -> Client:
    c = Client()
    c.force_login(user)  # type: ignore[arg-type]
    return c


def test_team_for_gives_404_to_outsiders(trio: Trio) -> None:
    assert team_for(trio.owner, Perm.MANAGE, slug="alpha") == trio.team
    assert team_for(trio.member, Perm.EDIT, slug="alpha") == trio.team
    with pytest.raises(Http404):
        team_for(trio.member, Perm.MANAGE, slug="alpha")
    with pytest.raises(Http404):
        team_for(trio.outsider, Perm.VIEW, slug="alpha")
    assert list(teams_for(trio.outsider)) == [trio.other_team]
    assert can(trio.member, trio.team, Perm.VIEW) and not can(trio.outsider, trio.team, Perm.VIEW)


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("member", 200), ("outsider", 404)])
def test_team_detail_view(trio: Trio, who: str, status: int) -> None:
    response = _client(getattr(trio, who)).get(reverse("team_detail", args=["alpha"]))
    assert response.status_code == status
    if status == 200:
        assert "owner" in response.content.decode() and "member" in response.content.decode()


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("member", 404), ("outsider", 404)])
def test_only_owners_create_invitations(trio: Trio, who: str, status: int) -> None:
    response = _client(getattr(trio, who)).post(reverse("invitation_create", args=["alpha"]), {"role": "editor"})
    assert response.status_code == status
    assert Invitation.objects.filter(team=trio.team).exists() == (status == 302)


@pytest.mark.parametrize(("who", "status"), [("owner", 302), ("member", 404), ("outsider", 404)])
def test_only_owners_change_roles(trio: Trio, who: str, status: int) -> None:
    membership = Membership.objects.get(user=trio.member, team=trio.team)
    response = _client(getattr(trio, who)).post(
        reverse("membership_update", args=["alpha", membership.pk]), {"role": "viewer"}
    )
    assert response.status_code == status
    membership.refresh_from_db()
    assert membership.role == (Role.VIEWER if status == 302 else Role.EDITOR)


def test_last_owner_cannot_be_demoted(trio: Trio) -> None:
    membership = Membership.objects.get(user=trio.owner, team=trio.team)
    response = _client(trio.owner).post(reverse("membership_update", args=["alpha", membership.pk]), {"role": "viewer"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_team_switch_rejects_teams_you_are_not_in(trio: Trio) -> None:
    client = _client(trio.outsider)
    assert client.post(reverse("team_switch"), {"team": "alpha"}).status_code == 404
    assert client.post(reverse("team_switch"), {"team": "beta", "next": "//evil.example"})["Location"] == "/"


def test_create_team_makes_you_owner(trio: Trio) -> None:
    response = _client(trio.member).post(reverse("team_create"), {"name": "Gamma squad"})
    assert response.status_code == 302
    assert Membership.objects.get(user=trio.member, team__slug="gamma-squad").role == Role.OWNER


def test_pages_need_login(client: Client, db: None) -> None:
    for name in ("dashboard", "research:index", "planning:index", "analytics:index", "recovery:index"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
