"""Incidents (list, detail, resolve) and the rollback center."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from analytics.charts import bar_chart, line_chart
from recovery import plans, selectors, services
from recovery.models import Cause, Incident
from taskmaster.access import Perm, can, is_site_admin
from taskmaster.models import Team


def _me(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _team(request: HttpRequest) -> Team | None:
    return getattr(request, "team", None)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    cause = request.GET.get("cause", "")
    status = status if status in Incident.Status.values else ""
    cause = cause if cause in Cause.values else ""
    team = _team(request)
    incidents = selectors.incidents_list(request.user, team, status=status, cause=cause)[:100]
    recent = selectors.recoveries_recent(request.user, team)
    by_cause = selectors.recovery_times_by_cause(request.user, team)
    times_chart = line_chart(
        "Recovery time of the latest recoveries (s)",
        [r.failed_at.strftime("%m-%d %H:%M") for r in recent],
        {
            "recovered": [r.seconds if r.outcome == "recovered" else None for r in recent],
            "gave up": [r.seconds if r.outcome == "failed" else None for r in recent],
        },
        unit=" s",
    )
    cause_chart = bar_chart("Average recovery time by cause (s)", [(c.label, c.avg_s) for c in by_cause], unit=" s")
    return render(
        request,
        "recovery/index.html",
        {
            "incidents": incidents,
            "status": status,
            "cause": cause,
            "statuses": Incident.Status.choices,
            "causes": Cause.choices,
            "times_chart": times_chart,
            "cause_chart": cause_chart,
            "by_cause": by_cause,
            "team": team,
        },
    )


@login_required
def incident(request: HttpRequest, pk: int) -> HttpResponse:
    obj = selectors.incident_for(request.user, Perm.VIEW, pk=pk)
    plan = [(a, plans.ACTION_LABELS.get(a, a)) for a in plans.plan_for(obj.cause)]
    return render(
        request,
        "recovery/incident.html",
        {
            "incident": obj,
            "plan": plan,
            "evidence": selectors.incident_evidence(obj),
            "recoveries": selectors.incident_recoveries(obj),
            "can_resolve": obj.live and _can_edit(request, obj),
        },
    )


def _can_edit(request: HttpRequest, obj: Incident) -> bool:
    if obj.team is None:
        return is_site_admin(request.user)
    return can(request.user, obj.team, Perm.EDIT)


@login_required
@require_POST
def incident_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    obj = selectors.incident_for(request.user, Perm.VIEW, pk=pk)
    if not _can_edit(request, obj):
        raise PermissionDenied("Viewers cannot resolve incidents.")
    try:
        services.incident_resolve(incident=obj, user=_me(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Incident resolved. A new failure of the same kind opens a new incident.")
    return redirect("recovery:incident", pk=obj.pk)


@login_required
def rollbacks(request: HttpRequest) -> HttpResponse:
    changes = selectors.rollbackable(request.user, _team(request))
    return render(request, "recovery/rollbacks.html", {"changes": changes})


@login_required
@require_POST
def rollback(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """One click: call the owning app's rollback service (each keeps its own rules)."""
    user = _me(request)
    try:
        if kind == "planning":
            from planning import services as planning_services
            from planning.selectors import revision_for

            rev = revision_for(user, Perm.EDIT, pk=pk)
            planning_services.revision_rollback(revision=rev, user=user)
            what = rev.summary
        elif kind == "analytics":
            from analytics import services as analytics_services
            from analytics.selectors import revision_for as config_revision_for

            crev = config_revision_for(user, Perm.VIEW, pk=pk)
            global_change = any(k.startswith(("role_default:", "setting:*:")) for k in crev.after)
            if not (is_site_admin(user) or (crev.team and not global_change and can(user, crev.team, Perm.MANAGE))):
                raise PermissionDenied("Only a team owner (or a site admin for site-wide changes) may roll this back.")
            analytics_services.revision_rollback(revision=crev, user=user)
            what = crev.description
        elif kind == "registry":
            reg = selectors.registry_revision_for(user, Perm.MANAGE, pk=pk)
            services.registry_rollback(revision=reg, user=user)
            what = reg.description
        else:
            raise Http404("Unknown kind of change")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Rolled back: {what}.")
    return redirect("recovery:rollbacks")
