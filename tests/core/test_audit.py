"""Permission changes leave an audit trail that names who did what, and never a secret."""

from __future__ import annotations

from django.test import Client

from taskmaster.models import AuditEvent, Invitation, Membership, Role
from tests.conftest import Trio


def test_role_change_invitation_and_removal_are_audited(client: Client, trio: Trio) -> None:
    client.force_login(trio.owner)
    membership = Membership.objects.get(user=trio.member, team=trio.team)
    client.post(f"/teams/{trio.team.slug}/members/{membership.pk}/", {"role": "viewer"})
    client.post(f"/teams/{trio.team.slug}/invitations/", {"role": "editor"})
    invitation = Invitation.objects.get(team=trio.team)
    client.post(f"/teams/{trio.team.slug}/members/{membership.pk}/", {"action": "remove"})

    events = list(
        AuditEvent.objects.order_by("created_at").values_list("action", "actor__username", "target", "details")
    )
    assert events == [
        ("membership.role", "owner", "member", {"before": "editor", "after": "viewer"}),
        ("invitation.create", "owner", f"invitation {invitation.pk}", {"role": "editor"}),
        ("membership.remove", "owner", "member", {"role": "viewer"}),
    ]
    assert all(invitation.token not in str(event) for event in events)


def test_refused_changes_leave_no_event(client: Client, trio: Trio) -> None:
    client.force_login(trio.member)
    owner = Membership.objects.get(user=trio.owner, team=trio.team)
    assert client.post(f"/teams/{trio.team.slug}/members/{owner.pk}/", {"role": Role.VIEWER}).status_code == 404
    client.force_login(trio.outsider)
    assert client.post(f"/teams/{trio.team.slug}/members/{owner.pk}/", {"role": Role.VIEWER}).status_code == 404
    assert not AuditEvent.objects.exists()


def test_signup_is_audited_without_the_password(client: Client, db: None) -> None:
    client.post(
        "/signup/",
        {"username": "first", "password": "a-long-enough-passphrase-9", "password_again": "a-long-enough-passphrase-9"},
    )
    signup = AuditEvent.objects.get(action="user.signup")
    assert signup.details == {"site_admin": True, "invited": False, "active": True}
    assert "passphrase" not in str(AuditEvent.objects.values_list("details", flat=True))
