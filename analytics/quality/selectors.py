"""Reads of the quality module; one ``<thing>_for`` helper per object type (404 for outsiders)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from analytics.quality.models import EvalRun, Scenario, Suite, UatSession, Verdict
from taskmaster.access import AnyUser, Perm, get_scoped, scoped
from taskmaster.models import Team


def suite_for(user: AnyUser, perm: Perm, **lookup: Any) -> Suite:
    return get_scoped(Suite.objects.select_related("team", "collection"), user, perm, **lookup)


def suites_for(user: AnyUser, team: Team | None) -> QuerySet[Suite]:
    qs = scoped(Suite.objects.select_related("team"), user, Perm.VIEW)
    return qs.filter(team=team) if team is not None else qs


def evalrun_for(user: AnyUser, perm: Perm, **lookup: Any) -> EvalRun:
    return get_scoped(
        EvalRun.objects.select_related("suite", "suite__team", "job"), user, perm, team_path="suite__team", **lookup
    )


def evalruns_for(user: AnyUser, pks: list[int]) -> QuerySet[EvalRun]:
    return scoped(EvalRun.objects.select_related("suite"), user, Perm.VIEW, team_path="suite__team").filter(pk__in=pks)


def suite_runs(suite: Suite) -> QuerySet[EvalRun]:
    return suite.runs.select_related("job", "created_by")


def uat_session_for(user: AnyUser, perm: Perm, **lookup: Any) -> UatSession:
    return get_scoped(UatSession.objects.select_related("team", "coordinator"), user, perm, **lookup)


def uat_sessions_for(user: AnyUser, team: Team | None, archived: bool = False) -> QuerySet[UatSession]:
    qs = scoped(UatSession.objects.select_related("team", "coordinator"), user, Perm.VIEW)
    qs = qs.filter(status=UatSession.Status.ARCHIVED) if archived else qs.exclude(status=UatSession.Status.ARCHIVED)
    return qs.filter(team=team) if team is not None else qs


def scenario_for(user: AnyUser, perm: Perm, **lookup: Any) -> Scenario:
    return get_scoped(
        Scenario.objects.select_related("session", "session__team"), user, perm, team_path="session__team", **lookup
    )


def verdict_for(user: AnyUser, perm: Perm, **lookup: Any) -> Verdict:
    return get_scoped(
        Verdict.objects.select_related("scenario__session"), user, perm, team_path="scenario__session__team", **lookup
    )
