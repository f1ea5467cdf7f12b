"""Admin for the knowledge base, with the latest ingestion job's live progress bar."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from research import services
from research.models import Collection, Document, Source
from research.selectors import collection_jobs


class AdminMedia:
    # htmx lets the included job partial poll itself inside the admin too.
    js = ("vendor/htmx-2.0.11.min.js",)
    css = {"all": ("research/admin.css",)}


class SourceInline(admin.TabularInline):
    model = Source
    fields = ("name", "kind", "status", "error")
    readonly_fields = ("name", "kind", "status", "error")
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "slug", "version", "embedding_model")
    list_filter = ("team",)
    search_fields = ("name", "slug")
    readonly_fields = ("version", "progress")
    inlines = [SourceInline]
    actions = ["reindex"]
    Media = AdminMedia

    @admin.display(description="Indexing")
    def progress(self, obj: Collection) -> SafeString:
        if obj.pk is None:
            return mark_safe("")
        jobs = collection_jobs(obj, limit=1)
        if not jobs:
            return mark_safe('<span class="muted">No indexing job yet.</span>')
        return mark_safe(render_to_string("taskmaster/_job.html", {"job": jobs[0]}))  # noqa: S308 - template-escaped

    @admin.action(description="Index pending sources / re-index")
    def reindex(self, request: HttpRequest, queryset: QuerySet[Collection]) -> None:
        for collection in queryset:
            services.ingest_start(collection=collection, user=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Started indexing {queryset.count()} collection(s).")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "collection", "kind", "status", "created_at")
    list_filter = ("status", "kind", "collection__team")
    search_fields = ("name", "url", "path")
    readonly_fields = ("status", "error", "job", "progress", "created_by")
    Media = AdminMedia

    @admin.display(description="Indexing")
    def progress(self, obj: Source) -> SafeString:
        if obj.job is None:
            return mark_safe("")
        return mark_safe(render_to_string("taskmaster/_job.html", {"job": obj.job}))  # noqa: S308 - template-escaped

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        new = obj.pk is None
        if new:
            obj.created_by = request.user  # type: ignore[assignment]
            if obj.kind == Source.Kind.FOLDER and not request.user.is_superuser:  # type: ignore[union-attr]
                obj.status, obj.error = "failed", "Only site admins may index server folders."
        super().save_model(request, obj, form, change)
        if new and obj.status == "pending":
            services.ingest_start(collection=obj.collection, user=request.user, source_ids=[obj.pk])  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        services.source_delete(source=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            services.source_delete(source=source)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "collection", "doc_type", "status", "chunk_count", "indexed_at")
    list_filter = ("status", "doc_type", "collection__team")
    search_fields = ("title", "sha256")
    readonly_fields = [f.name for f in Document._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
