from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from recovery import services
from recovery.models import AlertChannel, AlertSent, Evidence, Incident, Recovery, RegistryRevision


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "min_severity", "rate_limit_minutes", "enabled")
    list_filter = ("enabled", "min_severity")


@admin.register(AlertSent)
class AlertSentAdmin(admin.ModelAdmin):
    list_display = ("sent_at", "channel", "fingerprint", "ok")
    readonly_fields = ("channel", "incident", "fingerprint", "sent_at", "ok", "detail")


class EvidenceInline(admin.TabularInline):
    model = Evidence
    extra = 0
    readonly_fields = ("created_at", "call_id", "job_id", "error_class", "message", "input_chars")
    exclude = ("traceback",)
    can_delete = False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ("cause", "status", "team", "feature", "model_name", "count", "last_seen")
    list_filter = ("status", "cause", "severity")
    search_fields = ("feature", "model_name", "message")
    inlines = [EvidenceInline]


@admin.register(Recovery)
class RecoveryAdmin(admin.ModelAdmin):
    list_display = ("incident", "outcome", "failed_at", "seconds")
    list_filter = ("outcome",)


@admin.register(RegistryRevision)
class RegistryRevisionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "description", "rolled_back_at")
    readonly_fields = (
        "kind",
        "object_key",
        "description",
        "before",
        "after",
        "created_at",
        "rolled_back_at",
        "rolled_back_by",
    )
    actions = ["roll_back"]

    @admin.action(description="Roll back the selected registry changes")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[RegistryRevision]) -> None:
        for rev in queryset.order_by("-created_at"):
            try:
                services.registry_rollback(revision=rev, user=request.user)  # type: ignore[arg-type]
            except ValidationError as exc:
                self.message_user(request, f"{rev}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"Rolled back: {rev}")
