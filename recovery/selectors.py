"""Reads of the recovery app: the ``_for`` helpers, lists, rollbackable changes and recovery times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.http import Http404

from recovery.models import Evidence, Incident, Recovery, RegistryRevision
from taskmaster.access import Perm, can, get_scoped, is_site_admin, scoped
from taskmaster.models import Team

AnyUser = User | AnonymousUser


def incident_for(user: AnyUser, perm: Perm, **lookup: object) -> Incident:
    """404 for outsiders; incidents without a team (site-wide) are for site admins only."""
    return get_scoped(Incident.objects.select_related("team"), user, perm, "team", **lookup)


def registry_revision_for(user: AnyUser, perm: Perm, **lookup: object) -> RegistryRevision:
    if not is_site_admin(user):
        raise Http404("No registry revision found")
    try:
        return RegistryRevision.objects.get(**lookup)
    except RegistryRevision.DoesNotExist:
        raise Http404("No registry revision found") from None


def incidents_list(user: AnyUser, team: Team | None, *, status: str = "", cause: str = "") -> QuerySet[Incident]:
    qs = scoped(Incident.objects.all(), user, Perm.VIEW)
    if team is not None:
        qs = qs.filter(Q(team=team) | Q(team__isnull=True)) if is_site_admin(user) else qs.filter(team=team)
    if status:
        qs = qs.filter(status=status)
    if cause:
        qs = qs.filter(cause=cause)
    return qs.select_related("team").order_by("-last_seen", "-pk")


def incident_evidence(incident: Incident) -> QuerySet[Evidence]:
    return incident.evidence.all()[:50]  # type: ignore[return-value]


def incident_recoveries(incident: Incident) -> list[Recovery]:
    return list(incident.recoveries.prefetch_related("steps")[:20])


def recoveries_recent(user: AnyUser, team: Team | None, limit: int = 40) -> list[Recovery]:
    incidents = incidents_list(user, team)
    qs = Recovery.objects.filter(incident__in=incidents.values("pk")).exclude(outcome=Recovery.Outcome.RUNNING)
    return list(qs.select_related("incident").order_by("-failed_at")[:limit])[::-1]


@dataclass
class CauseTime:
    cause: str
    label: str
    n: int
    avg_s: float | None
    max_s: float | None


def recovery_times_by_cause(user: AnyUser, team: Team | None) -> list[CauseTime]:
    incidents = incidents_list(user, team)
    rows = (
        Recovery.objects.filter(incident__in=incidents.values("pk"), outcome=Recovery.Outcome.RECOVERED)
        .values("incident__cause")
        .annotate(n=Count("id"), avg=Avg("seconds"), top=Max("seconds"))
        .order_by("incident__cause")
    )
    from recovery.models import Cause

    labels = dict(Cause.choices)
    return [
        CauseTime(
            r["incident__cause"],
            str(labels.get(r["incident__cause"], r["incident__cause"])),
            r["n"],
            r["avg"],
            r["top"],
        )
        for r in rows
    ]


# --- the rollback center -------------------------------------------------------------------------


@dataclass
class Change:
    kind: str  # "planning", "analytics", "registry"
    pk: int
    when: datetime
    description: str
    where: str
    by: str
    rolled_back: bool
    can_roll_back: bool
    url: str


def rollbackable(user: AnyUser, team: Team | None, limit: int = 50) -> list[Change]:
    """Every change the user may see that can be rolled back, newest first, from all three owners."""
    from django.urls import reverse

    from analytics.selectors import revisions as analytics_revisions
    from planning.models import Revision as PlanningRevision

    changes: list[Change] = []
    prev = scoped(PlanningRevision.objects.all(), user, Perm.VIEW, team_path="tag__project__team")
    if team is not None:
        prev = prev.filter(tag__project__team=team)
    for rev in prev.select_related("tag__project__team", "user").order_by("-created_at")[:limit]:
        changes.append(
            Change(
                kind="planning",
                pk=rev.pk,
                when=rev.created_at,
                description=rev.summary,
                where=f"{rev.tag.project.name} / {rev.tag.name} ({rev.workflow})",
                by=rev.user.get_username() if rev.user else "",
                rolled_back=rev.rolled_back_at is not None,
                can_roll_back=rev.rolled_back_at is None and can(user, rev.tag.project.team, Perm.EDIT),
                url=reverse("planning:revision", args=[rev.pk]),
            )
        )
    for crev in analytics_revisions(user, team)[:limit]:
        global_change = any(k.startswith(("role_default:", "setting:*:")) for k in crev.after)
        allowed = is_site_admin(user) or (
            crev.team is not None and not global_change and can(user, crev.team, Perm.MANAGE)
        )
        changes.append(
            Change(
                kind="analytics",
                pk=crev.pk,
                when=crev.created_at,
                description=crev.description,
                where="configuration" + ("" if crev.team_id else " (site-wide)"),
                by=crev.created_by.get_username() if crev.created_by else "",
                rolled_back=crev.rolled_back_at is not None,
                can_roll_back=crev.rolled_back_at is None and allowed,
                url=reverse("analytics:revisions"),
            )
        )
    if is_site_admin(user):
        for reg in RegistryRevision.objects.all()[:limit]:
            changes.append(
                Change(
                    kind="registry",
                    pk=reg.pk,
                    when=reg.created_at,
                    description=reg.description,
                    where="model registry",
                    by="",
                    rolled_back=reg.rolled_back_at is not None,
                    can_roll_back=reg.rolled_back_at is None,
                    url=reverse("admin:recovery_registryrevision_change", args=[reg.pk]),
                )
            )
    changes.sort(key=lambda c: c.when, reverse=True)
    return changes[:limit]
