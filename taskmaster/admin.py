from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from taskmaster import services
from taskmaster.llm.models import LLMCall, LLMModel, ModelLoadStatus, ModelRole, RoleDefault
from taskmaster.llm.registry import model_verify, role_default_set
from taskmaster.models import Invitation, Membership, Team

User = get_user_model()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["team", "role", "created_by", "expires_at", "used_by"]
    list_filter = ["role"]


admin.site.unregister(User)


@admin.register(User)
class TaskmasterUserAdmin(UserAdmin):
    list_display = ["username", "email", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    actions = ["approve"]

    @admin.action(description="Approve selected sign-ups (activate)")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:  # type: ignore[type-arg]
        for user in queryset.filter(is_active=False):
            services.user_approve(user=user)
        self.message_user(request, "Approved.", messages.SUCCESS)


class LoadStatusInline(admin.TabularInline):
    model = ModelLoadStatus
    extra = 0
    can_delete = False
    readonly_fields = ["worker", "state", "error", "load_seconds", "updated_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _make_default(role: str):  # type: ignore[no-untyped-def]
    @admin.action(description=f"Make default for role “{role}”")
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:  # type: ignore[type-arg]
        if queryset.count() != 1:
            modeladmin.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        model = queryset.get()
        try:
            role_default_set(role=role, model=model)
        except ValueError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return
        modeladmin.message_user(request, f"{model.name} is now the default for {role}.", messages.SUCCESS)

    action.__name__ = f"make_default_{role}"
    return action


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "size", "availability", "roles_display", "enabled", "queue_name", "verified_at"]
    list_filter = ["kind", "enabled", "available"]
    search_fields = ["name", "file_path"]
    readonly_fields = ["size", "availability", "last_error", "verified_at", "load_status", "defaults_display"]
    inlines = [LoadStatusInline]
    actions = ["verify", *[_make_default(role) for role in ModelRole.values]]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "file_path", "sha256", "size", "availability", "last_error",
                           "verified_at", "defaults_display"]}),
        ("Runtime", {"fields": ["context_length", "n_threads", "n_batch", "n_gpu_layers", "queue", "roles",
                                "sampling"]}),
        ("Chat template", {"fields": ["chat_format", "chat_template"], "classes": ["collapse"]}),
        ("Hugging Face source", {"fields": ["hf_repo", "hf_filename"], "classes": ["collapse"]}),
        ("Workers", {"fields": ["load_status"]}),
    ]

    @admin.display(description="File size")
    def size(self, obj: LLMModel) -> str:
        return filesizeformat(obj.file_size) if obj.file_size else "—"

    @admin.display(description="Available", ordering="available")
    def availability(self, obj: LLMModel) -> SafeString:
        if obj.available:
            return format_html('<span style="color:#1f8b4c">✔ available</span>')
        return format_html('<span style="color:#c0392b">✘ {}</span>', obj.last_error or "not verified")

    @admin.display(description="Roles")
    def roles_display(self, obj: LLMModel) -> str:
        return ", ".join(obj.roles)

    @admin.display(description="Default for")
    def defaults_display(self, obj: LLMModel) -> str:
        return ", ".join(obj.default_for.values_list("role", flat=True)) or "—"

    @admin.display(description="Load status per worker")
    def load_status(self, obj: LLMModel) -> SafeString:
        rows = obj.load_statuses.all()
        if not rows:
            return format_html("<em>not loaded by any worker yet</em>")
        return format_html_join(
            "", "<div>{}: <strong>{}</strong> {}</div>", ((r.worker, r.state, r.error) for r in rows)
        )

    def save_model(self, request: HttpRequest, obj: LLMModel, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        model_verify(model=obj, record_hash=not obj.sha256)
        if not obj.available:
            self.message_user(request, f"{obj.name} is unavailable: {obj.last_error}", messages.ERROR)

    @admin.action(description="Verify file (existence, GGUF header, sha256)")
    def verify(self, request: HttpRequest, queryset: QuerySet) -> None:  # type: ignore[type-arg]
        for model in queryset:
            model_verify(model=model)
            if model.available:
                self.message_user(request, f"{model.name}: file OK", messages.SUCCESS)
            else:
                self.message_user(request, f"{model.name}: {model.last_error}", messages.ERROR)


@admin.register(RoleDefault)
class RoleDefaultAdmin(admin.ModelAdmin):
    list_display = ["role", "model", "updated_at"]


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    list_display = ["created_at", "feature", "model_name", "outcome", "error_class", "prompt_tokens",
                    "completion_tokens", "ttft_ms", "total_ms", "tokens_per_s", "cache_hit", "user", "team"]
    list_filter = ["outcome", "feature", "model_name", "cache_hit"]
    search_fields = ["feature", "model_name", "error_message"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
