from django.contrib import admin

from planning.models import PRD, ComplexityReport, Project, Revision, Subtask, Tag, Task, TaskNote


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "slug", "created_at"]
    search_fields = ["name", "slug"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["number", "title", "tag", "status", "priority", "version"]
    list_filter = ["status", "priority"]
    search_fields = ["title"]


@admin.register(Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tag", "workflow", "summary", "user", "rolled_back_at"]
    readonly_fields = ["snapshot_before", "snapshot_after"]


admin.site.register([Subtask, PRD, ComplexityReport, TaskNote])
