"""Personal API tokens and per-user API limits (app label ``taskmaster``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token acting as its user. Only the sha256 of the secret is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the token, shown so people can tell their tokens apart.
    prefix = models.CharField(max_length=20, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "taskmaster"
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class UserApiLimit(models.Model):
    """Per-user overrides of the API limits; an empty field means the site default."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_limit")
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: API_RATE_LIMIT_PER_MINUTE. 0: no limit."
    )
    daily_token_quota = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Prompt + completion tokens per UTC day. Empty: API_DAILY_TOKEN_QUOTA. 0: none.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "taskmaster"
        verbose_name = "user API limit"

    def __str__(self) -> str:
        return f"API limits of {self.user}"
