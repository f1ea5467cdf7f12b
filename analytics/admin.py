from __future__ import annotations

from django.contrib import admin

from analytics.models import ConfigRevision, Finding, Recommendation, Setting


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ["kind", "subject", "team", "status", "p_value", "effect_size", "last_seen"]
    list_filter = ["kind", "status"]
    search_fields = ["subject", "summary"]


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    list_display = ["title", "action", "status", "decided_by", "decided_at", "evaluated_at"]
    list_filter = ["action", "status"]


@admin.register(Setting)
class SettingAdmin(admin.ModelAdmin):
    list_display = ["key", "value", "team", "updated_at"]
    search_fields = ["key"]


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(admin.ModelAdmin):
    list_display = ["description", "team", "created_by", "created_at", "rolled_back_at"]
    readonly_fields = ["before", "after"]
