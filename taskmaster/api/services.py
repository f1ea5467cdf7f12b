"""Writes of the API: issuing and revoking personal tokens, per-user limits."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from taskmaster.api.models import ApiToken, UserApiLimit
from taskmaster.api.selectors import hash_secret

TOKEN_PREFIX = "tml_"
# How often last_used_at is written: not on every request of a busy client.
_TOUCH_EVERY = timedelta(seconds=60)


@transaction.atomic
def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token and its secret. The secret is returned once and only its hash is stored."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name, e.g. the tool or machine that will use it.")
    if len(name) > 100:
        raise ValidationError("A token name has at most 100 characters.")
    if not user.is_active:
        raise ValidationError(f"{user} is deactivated; activate the account first.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=secret[:12], token_hash=hash_secret(secret))
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke at once; idempotent (a revoked token keeps its first revocation time)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_touch(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


@transaction.atomic
def user_api_limit_set(*, user: User, requests_per_minute: int | None, daily_token_quota: int | None) -> UserApiLimit:
    for label, value in (("requests per minute", requests_per_minute), ("daily token quota", daily_token_quota)):
        if value is not None and value < 0:
            raise ValidationError(f"The {label} cannot be negative (0 means no limit).")
    limit, _ = UserApiLimit.objects.update_or_create(
        user=user, defaults={"requests_per_minute": requests_per_minute, "daily_token_quota": daily_token_quota}
    )
    return limit
