from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from taskmaster import services
from taskmaster.models import Membership, Role, Team

User = get_user_model()
PASSWORD = "a-long-enough-passphrase-9"


def _signup(client: Client, username: str, invite: str = "") -> object:
    return client.post(
        reverse("signup") + (f"?invite={invite}" if invite else ""),
        {
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "password_again": PASSWORD,
            "invite": invite,
        },
    )


@pytest.mark.django_db
def test_first_user_becomes_site_admin_with_a_team(client: Client) -> None:
    response = _signup(client, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    alice = User.objects.get(username="alice")
    assert alice.is_active and alice.is_staff and alice.is_superuser
    membership = Membership.objects.get(user=alice)
    assert membership.role == Role.OWNER
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.status_code == 200
    assert "alice&#x27;s team" in dashboard.content.decode() or "alice's team" in dashboard.content.decode()


@pytest.mark.django_db
def test_second_user_waits_for_approval(client: Client) -> None:
    _signup(client, "alice")
    other = Client()
    response = _signup(other, "bob")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    bob = User.objects.get(username="bob")
    assert not bob.is_active and not bob.is_staff and not bob.is_superuser
    assert not other.login(username="bob", password=PASSWORD)
    services.user_approve(user=bob)
    assert other.login(username="bob", password=PASSWORD)


@pytest.mark.django_db
def test_invitation_link_activates_and_joins_team(client: Client) -> None:
    _signup(client, "alice")
    alice = User.objects.get(username="alice")
    team = Team.objects.get(memberships__user=alice)
    invitation = services.invitation_create(team=team, role=Role.VIEWER, created_by=alice)
    newcomer = Client()
    response = _signup(newcomer, "carol", invite=invitation.token)
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    carol = User.objects.get(username="carol")
    assert carol.is_active and not carol.is_superuser
    assert Membership.objects.get(user=carol, team=team).role == Role.VIEWER
    invitation.refresh_from_db()
    assert invitation.used_by == carol
    # A used link cannot bring a second person in.
    _signup(Client(), "dave", invite=invitation.token)
    assert not User.objects.filter(username="dave", is_active=True).exists()


@pytest.mark.django_db
def test_signup_rejects_mismatched_passwords_and_taken_names(client: Client) -> None:
    _signup(client, "alice")
    response = Client().post(reverse("signup"), {"username": "ALICE", "password": PASSWORD, "password_again": "x"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "That username is taken." in body
    assert User.objects.count() == 1
