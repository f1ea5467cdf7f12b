"""Admin for API tokens (revoke only: secrets are created by their owners) and per-user limits."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from taskmaster.api import limits
from taskmaster.api.models import ApiToken, UserApiLimit
from taskmaster.api.services import api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token's secret is shown once to the person who creates it: on their settings
        # page or by `manage.py create_api_token`.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


@admin.register(UserApiLimit)
class UserApiLimitAdmin(admin.ModelAdmin):
    list_display = ["user", "requests_per_minute", "daily_token_quota", "tokens_today", "updated_at"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    @admin.display(description="Tokens used today (UTC)")
    def tokens_today(self, obj: UserApiLimit) -> int:
        return limits.tokens_used_today(obj.user_id)
