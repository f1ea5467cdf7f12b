"""Shared lookups of the planning management commands."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.models import Q

from planning.models import Project
from taskmaster.models import Team


def find_team(ref: str) -> Team:
    team = Team.objects.filter(Q(slug=ref) | Q(name=ref)).first()
    if team is None:
        raise CommandError(f"No team with slug or name {ref!r}.")
    return team


def find_project(team: Team, ref: str) -> Project | None:
    return Project.objects.filter(team=team).filter(Q(slug=ref) | Q(name=ref)).first()
