"""Object-level authorization: "object X for user U with permission P", else 404.

Every team-owned object type gets one ``<thing>_for(user, ..., perm)`` helper built
on ``scoped()``/``get_scoped()``; views, consumers and the API all go through those
helpers, so an outsider cannot even learn that an object exists.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from taskmaster.models import Membership, Role, Team


class Perm(StrEnum):
    VIEW = "view"
    EDIT = "edit"
    MANAGE = "manage"


ROLE_PERMS: dict[str, frozenset[Perm]] = {
    Role.OWNER: frozenset({Perm.VIEW, Perm.EDIT, Perm.MANAGE}),
    Role.EDITOR: frozenset({Perm.VIEW, Perm.EDIT}),
    Role.VIEWER: frozenset({Perm.VIEW}),
}

M = TypeVar("M", bound=Model)
AnyUser = User | AnonymousUser


def roles_with(perm: Perm) -> list[str]:
    return [role for role, perms in ROLE_PERMS.items() if perm in perms]


def is_site_admin(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_superuser", False))


def team_filter(user: AnyUser, perm: Perm, team_path: str = "team") -> Q:
    """A Q limiting rows to teams where ``user`` holds ``perm``; applied in SQL, never after."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if is_site_admin(user):
        return Q()
    prefix = f"{team_path}__" if team_path else ""
    return Q(**{f"{prefix}memberships__user": user, f"{prefix}memberships__role__in": roles_with(perm)})


def scoped(queryset: QuerySet[M], user: AnyUser, perm: Perm, team_path: str = "team") -> QuerySet[M]:
    return queryset.filter(team_filter(user, perm, team_path)).distinct()


def get_scoped(queryset: QuerySet[M], user: AnyUser, perm: Perm, team_path: str = "team", **lookup: object) -> M:
    try:
        return scoped(queryset, user, perm, team_path).get(**lookup)
    except ObjectDoesNotExist:
        raise Http404(f"No {queryset.model._meta.verbose_name} found") from None


def teams_for(user: AnyUser, perm: Perm = Perm.VIEW) -> QuerySet[Team]:
    return scoped(Team.objects.all(), user, perm, team_path="")


def team_for(user: AnyUser, perm: Perm, **lookup: object) -> Team:
    return get_scoped(Team.objects.all(), user, perm, team_path="", **lookup)


def role_in(user: AnyUser, team: Team) -> str | None:
    if is_site_admin(user):
        return Role.OWNER
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, team=team).values_list("role", flat=True).first()


def can(user: AnyUser, team: Team, perm: Perm) -> bool:
    role = role_in(user, team)
    return role is not None and perm in ROLE_PERMS[role]
