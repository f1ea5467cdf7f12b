"""Reads of the API: tokens, limits, the team a call acts for, the models a user may call."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from taskmaster.access import Perm, team_for
from taskmaster.api.limits import Limits
from taskmaster.api.models import ApiToken, UserApiLimit
from taskmaster.llm.models import LLMModel
from taskmaster.models import Team
from taskmaster.selectors import current_team

AnyUser = User | AnonymousUser


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_for(user: AnyUser, **lookup: object) -> ApiToken:
    """A token of ``user`` (tokens are personal: nobody else, not even team owners, sees it)."""
    if not user.is_authenticated:
        raise Http404("No API token found")
    token = ApiToken.objects.filter(user=user, **lookup).first()  # type: ignore[misc]
    if token is None:
        raise Http404("No API token found")
    return token


def api_tokens_of(user: AnyUser) -> QuerySet[ApiToken]:
    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")  # type: ignore[misc]


def api_token_by_secret(secret: str) -> ApiToken | None:
    """The active token with this secret, with its user, or None."""
    if not secret or len(secret) > 200:
        return None
    return (
        ApiToken.objects.select_related("user").filter(token_hash=hash_secret(secret), revoked_at__isnull=True).first()
    )


def api_limits_of(user_id: int) -> Limits:
    row = UserApiLimit.objects.filter(user_id=user_id).first()
    rpm = row.requests_per_minute if row and row.requests_per_minute is not None else None
    quota = row.daily_token_quota if row and row.daily_token_quota is not None else None
    return Limits(
        requests_per_minute=settings.API_RATE_LIMIT_PER_MINUTE if rpm is None else rpm,
        daily_token_quota=settings.API_DAILY_TOKEN_QUOTA if quota is None else quota,
    )


def api_team(user: AnyUser, slug: str | None) -> Team | None:
    """The team a call acts for: ``X-Team`` when given (404 unless a member), else the user's first team."""
    if slug:
        return team_for(user, Perm.VIEW, slug=slug)
    return current_team(user, None)


def api_registry_models() -> QuerySet[LLMModel]:
    """Registry models anyone with a token may call: enabled and verified available."""
    return LLMModel.objects.filter(enabled=True, available=True).order_by("kind", "name")
