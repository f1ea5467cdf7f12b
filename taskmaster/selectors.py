"""Reads of the core app."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import QuerySet

from taskmaster.access import AnyUser, Perm, get_scoped, teams_for
from taskmaster.models import Invitation, Job, Membership, Team


def current_team(user: AnyUser, team_id: object) -> Team | None:
    if not user.is_authenticated:
        return None
    teams = teams_for(user, Perm.VIEW)
    if isinstance(team_id, int):
        team = teams.filter(pk=team_id).first()
        if team is not None:
            return team
    # No (valid) choice in the session: fall back to the user's own first membership,
    # not to an arbitrary team a superuser can merely see.
    own = Team.objects.filter(memberships__user=user).order_by("memberships__created_at").first()
    return own or teams.first()


def team_members(team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def open_invitations(team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team, used_at__isnull=True).order_by("-created_at")


def pending_users() -> QuerySet[User]:
    return User.objects.filter(is_active=False).order_by("date_joined")


def job_for(user: AnyUser, pk: int, perm: Perm = Perm.VIEW) -> Job:
    return get_scoped(Job.objects.all(), user, perm, pk=pk)


def recent_jobs(team: Team, kind_prefix: str = "", limit: int = 10) -> QuerySet[Job]:
    qs = Job.objects.filter(team=team)
    if kind_prefix:
        qs = qs.filter(kind__startswith=kind_prefix)
    return qs.order_by("-created_at")[:limit]
