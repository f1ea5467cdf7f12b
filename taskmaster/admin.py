from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from taskmaster import services
from taskmaster.llm import acquire
from taskmaster.llm.models import LLMCall, LLMModel, ModelKind, ModelLoadStatus, ModelRole, RoleDefault
from taskmaster.llm.registry import model_verify, role_default_set
from taskmaster.models import AuditEvent, Invitation, Membership, Team

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
            services.user_approve(user=user, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, "Approved.", messages.SUCCESS)


class LoadStatusInline(admin.TabularInline):
    model = ModelLoadStatus
    extra = 0
    can_delete = False
    readonly_fields = ["worker", "state", "error", "load_seconds", "updated_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


ModelAction = Callable[[admin.ModelAdmin, HttpRequest, "QuerySet[LLMModel]"], None]


def _make_default(role: str) -> ModelAction:
    @admin.action(description=f"Make default for role “{role}”")
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:  # type: ignore[type-arg]
        if queryset.count() != 1:
            modeladmin.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        model = queryset.get()
        # Every feature calling this role would fail at once with a broken default.
        if not model.enabled:
            modeladmin.message_user(request, f"{model.name} is disabled; enable it first.", messages.ERROR)
            return
        if not model.available:
            modeladmin.message_user(
                request,
                f"{model.name} is unavailable ({model.last_error or 'not verified'}); fix and verify it first.",
                messages.ERROR,
            )
            return
        try:
            role_default_set(role=role, model=model)
        except ValueError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return
        modeladmin.message_user(request, f"{model.name} is now the default for {role}.", messages.SUCCESS)

    action.__name__ = f"make_default_{role}"
    return action


class AddModelFileForm(forms.Form):
    """The three ways to bring a GGUF file into the registry."""

    SOURCES = [
        ("upload", "Upload a GGUF file from this computer"),
        ("path", "Use a file already on the server"),
        ("hf", "Download from Hugging Face (needs internet on the server)"),
    ]

    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect, initial="upload")
    name = forms.SlugField(max_length=80, help_text="Letters, digits, - and _. Also the model id in the /v1 API.")
    kind = forms.ChoiceField(choices=ModelKind.choices, initial=ModelKind.CHAT)
    context_length = forms.IntegerField(
        required=False,
        min_value=128,
        max_value=1_048_576,
        help_text="Tokens. Empty: 2048 for chat, 512 for embedding models (a replaced model keeps its value).",
    )
    replace = forms.BooleanField(
        required=False,
        label_suffix="",
        label="Replace the file of an existing model with this name",
        help_text="Without this, an existing name is refused. The old file is left in place.",
    )
    file = forms.FileField(
        required=False, label="GGUF file", widget=forms.ClearableFileInput(attrs={"accept": ".gguf"})
    )
    server_path = forms.CharField(
        required=False, max_length=1000, label="Absolute path on the server", help_text="e.g. /srv/models/qwen.gguf"
    )
    filename = forms.CharField(
        required=False,
        max_length=200,
        label="Save as",
        help_text="File name inside MODELS_DIR for an upload or a copied file; empty: keep the original name.",
    )
    hf_repo = forms.CharField(
        required=False, max_length=200, label="Repository", help_text="e.g. bartowski/Qwen2.5-0.5B-Instruct-GGUF"
    )
    hf_filename = forms.CharField(
        required=False,
        max_length=200,
        label="File in the repository",
        help_text="e.g. Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        source = data.get("source")
        if source == "upload" and not data.get("file"):
            self.add_error("file", "Choose a GGUF file to upload.")
        if source == "path" and not (data.get("server_path") or "").strip():
            self.add_error("server_path", "Enter the absolute path of a GGUF file on the server.")
        if source == "hf":
            if not (data.get("hf_repo") or "").strip():
                self.add_error("hf_repo", "Enter a Hugging Face repository such as owner/name.")
            if not (data.get("hf_filename") or "").strip():
                self.add_error("hf_filename", "Enter the GGUF file's name in that repository.")
        return data


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    change_list_template = "admin/taskmaster/llmmodel/change_list.html"
    list_display = [
        "name",
        "kind",
        "size",
        "availability",
        "load_status",
        "roles_display",
        "enabled",
        "queue_name",
        "verified_at",
    ]
    list_filter = ["kind", "enabled", "available"]
    search_fields = ["name", "file_path"]
    readonly_fields = [
        "size",
        "availability",
        "last_error",
        "verified_at",
        "load_status",
        "defaults_display",
        "download_status",
    ]
    inlines = [LoadStatusInline]
    actions = ["verify", *[_make_default(role) for role in ModelRole.values]]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "kind",
                    "enabled",
                    "file_path",
                    "sha256",
                    "size",
                    "availability",
                    "last_error",
                    "verified_at",
                    "defaults_display",
                ]
            },
        ),
        (
            "Runtime",
            {"fields": ["context_length", "n_threads", "n_batch", "n_gpu_layers", "queue", "roles", "sampling"]},
        ),
        ("Chat template", {"fields": ["chat_format", "chat_template"], "classes": ["collapse"]}),
        ("Hugging Face source", {"fields": ["hf_repo", "hf_filename", "download_status"]}),
        ("Workers", {"fields": ["load_status"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LLMModel]:
        return super().get_queryset(request).prefetch_related("load_statuses", "default_for")

    @admin.display(description="File size")
    def size(self, obj: LLMModel) -> str:
        return filesizeformat(obj.file_size) if obj.file_size else "—"

    @admin.display(description="Available", ordering="available")
    def availability(self, obj: LLMModel) -> SafeString:
        if obj.available and obj.last_error:
            return format_html('<span style="color:#1f8b4c">✔ available</span> <em>({})</em>', obj.last_error)
        if obj.available:
            return format_html('<span style="color:#1f8b4c">✔ available</span>')
        return format_html('<span style="color:#c0392b">✘ {}</span>', obj.last_error or "not verified")

    @admin.display(description="Roles")
    def roles_display(self, obj: LLMModel) -> str:
        return ", ".join(obj.roles)

    @admin.display(description="Default for")
    def defaults_display(self, obj: LLMModel) -> str:
        return ", ".join(d.role for d in obj.default_for.all()) or "—"

    @admin.display(description="Load status per worker")
    def load_status(self, obj: LLMModel) -> SafeString:
        rows = obj.load_statuses.all()
        if not rows:
            return format_html("<em>not loaded by any worker yet</em>")
        return format_html_join(
            "", "<div>{}: <strong>{}</strong> {}</div>", ((r.worker, r.state, r.error) for r in rows)
        )

    @admin.display(description="Download")
    def download_status(self, obj: LLMModel) -> SafeString:
        job = acquire.latest_download_job(obj) if obj.pk else None
        if job is None:
            return format_html("<em>no download</em>")
        progress = f"{job.done} of {job.total} MiB" if job.total else ""
        return format_html(
            "<strong>{}</strong> {} <div>{}</div>{}",
            job.get_status_display(),
            progress,
            job.message,
            format_html('<div style="color:#c0392b">{}</div>', job.error) if job.error else "",
        )

    def save_model(self, request: HttpRequest, obj: LLMModel, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        model_verify(model=obj, record_hash=not obj.sha256)
        if not obj.available:
            self.message_user(request, f"{obj.name} is unavailable: {obj.last_error}", messages.ERROR)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and obj.last_error:
                job = acquire.latest_download_job(obj)
                if job is not None and not job.finished:
                    level = messages.INFO
                else:
                    level = messages.WARNING if obj.available else messages.ERROR
                self.message_user(request, f"{obj.name}: {obj.last_error}", level)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Verify file (existence, GGUF header, sha256)")
    def verify(self, request: HttpRequest, queryset: QuerySet[LLMModel]) -> None:
        for model in queryset:
            model_verify(model=model)
            if model.available:
                self.message_user(
                    request,
                    f"{model.name}: file OK ({filesizeformat(model.file_size or 0)}, sha256 {model.sha256[:12]}…)",
                    messages.SUCCESS,
                )
            else:
                self.message_user(request, f"{model.name} is unavailable: {model.last_error}", messages.ERROR)

    # --- add from a file ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        # csrf_exempt only so that the upload handler can be swapped before the body is
        # read; the view checks the token itself right after (see add_from_file_view).
        view = self.admin_site.admin_view(csrf_exempt(self.add_from_file_view))
        name = f"{self.opts.app_label}_{self.opts.model_name}_add_from_file"
        return [path("add-from-file/", view, name=name), *super().get_urls()]

    def add_from_file_view(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            # Stream uploads straight into MODELS_DIR (.part, then renamed) instead of
            # memory or /tmp; must happen before anything reads request.POST/FILES.
            acquire.request_upload_handlers(request)
        response: HttpResponse = csrf_protect(self._add_from_file)(request)
        return response

    def _add_from_file(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AddModelFileForm(request.POST or None, request.FILES or None)
        upload = request.FILES.get("file") if request.method == "POST" else None
        try:
            if request.method == "POST" and form.is_valid():
                model = self._acquire(request, form.cleaned_data)
                if model is not None:
                    url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[model.pk])
                    return HttpResponseRedirect(url)
        finally:
            if isinstance(upload, acquire.StreamedGGUF):
                upload.discard()  # a no-op once the file was moved into place
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add a model from a file",
            "form": form,
            "models_dir": settings.MODELS_DIR,
            "is_superuser": request.user.is_superuser,
        }
        return TemplateResponse(request, "admin/taskmaster/llmmodel/add_from_file.html", context)

    def _acquire(self, request: HttpRequest, data: dict[str, Any]) -> LLMModel | None:
        common: dict[str, Any] = {
            "name": data["name"],
            "kind": data["kind"],
            "context_length": data.get("context_length"),
            "replace": bool(data.get("replace")),
        }
        if common["replace"] and not self.has_change_permission(request):
            raise PermissionDenied
        source = data["source"]
        try:
            if source == "upload":
                upload = data["file"]
                if not isinstance(upload, acquire.StreamedGGUF):
                    raise acquire.AcquireError("the upload did not arrive through the model upload handler")
                model = acquire.model_add_from_upload(upload=upload, filename=data.get("filename", ""), **common)
            elif source == "path":
                # Reading arbitrary server paths is for site admins only.
                if not request.user.is_superuser:
                    raise acquire.AcquireError("only superusers may add a model from a server path")
                model = acquire.model_add_from_path(
                    source=data["server_path"], filename=data.get("filename", ""), **common
                )
            else:
                model, job = acquire.model_add_from_hf(
                    repo_id=data["hf_repo"], filename=data["hf_filename"], user=request.user, **common
                )
                self.message_user(
                    request,
                    f"Downloading {model.hf_repo}/{model.hf_filename} in the background"
                    + (f" (job #{job.pk})" if job else "")
                    + "; this page shows the outcome (reload it). The model stays unavailable until the file is "
                    "downloaded and verified.",
                    messages.INFO,
                )
                return model
        except acquire.AcquireError as exc:
            self.message_user(request, f"Could not add the model: {exc}", messages.ERROR)
            return None
        if not model.available:
            self.message_user(request, f"{model.name} was added but is unavailable: {model.last_error}", messages.ERROR)
            return model
        self.message_user(
            request,
            f"{model.name} added: {model.file_path}, {filesizeformat(model.file_size or 0)}, "
            f"sha256 {model.sha256[:12]}…, available.",
            messages.SUCCESS,
        )
        if model.enabled:
            workers = acquire.inference_workers_consume(model.queue_name)
            if workers:
                self.message_user(
                    request, f"Queue {model.queue_name} is served by {', '.join(workers)}.", messages.INFO
                )
            else:
                self.message_user(
                    request,
                    f"No inference worker is running; its queue {model.queue_name} is served once one starts.",
                    messages.WARNING,
                )
        return model


@admin.register(RoleDefault)
class RoleDefaultAdmin(admin.ModelAdmin):
    list_display = ["role", "model", "updated_at"]


@admin.register(LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "feature",
        "model_name",
        "outcome",
        "error_class",
        "prompt_tokens",
        "completion_tokens",
        "ttft_ms",
        "total_ms",
        "tokens_per_s",
        "cache_hit",
        "user",
        "team",
    ]
    list_filter = ["outcome", "feature", "model_name", "cache_hit"]
    search_fields = ["feature", "model_name", "error_message"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "target", "actor", "team"]
    list_filter = ["action"]
    search_fields = ["target", "actor__username", "team__slug"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LogEntry)
class AdminLogEntryAdmin(admin.ModelAdmin):
    """Every change made through this admin site, read-only."""

    list_display = ["action_time", "user", "content_type", "object_repr", "action_flag", "change_message"]
    list_filter = ["action_flag", "content_type"]
    search_fields = ["object_repr", "user__username"]
    date_hierarchy = "action_time"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


from taskmaster.api import admin as _api_admin  # noqa: E402,F401  (registers the API admin classes)
