"""Planning tables: projects, tags (Task Master's tagged task lists), tasks and subtasks.

Dependencies between items of the same level are real M2M rows (integrity for free);
references across levels ("3.2" from a task, "4" from a subtask) and references that do
not resolve (kept from an imported tasks.json so validate/fix can report and remove
them) live in ``cross_dependencies`` as ref strings. ``planning.refs`` is the only code
that reads or writes both halves.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from taskmaster.models import Team


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in-progress", "In progress"
    REVIEW = "review", "Review"
    DONE = "done", "Done"
    DEFERRED = "deferred", "Deferred"
    CANCELLED = "cancelled", "Cancelled"
    BLOCKED = "blocked", "Blocked"


class Priority(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}
# A dependency on an item in one of these states no longer blocks anything.
SATISFIED = frozenset({Status.DONE.value, Status.CANCELLED.value})


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="planning_projects")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    description = models.TextField(blank=True)
    complexity_threshold = models.PositiveSmallIntegerField(default=5)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "slug"], name="planning_project_unique_slug")]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50)
    # Task Master's per-tag "metadata" object (created, updated, description, ...), kept verbatim.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="planning_tag_unique_name")]

    def __str__(self) -> str:
        return self.name


class WorkItem(models.Model):
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    details = models.TextField(blank=True)
    test_strategy = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    cross_dependencies = models.JSONField(default=list, blank=True)
    # Unknown Task Master fields, kept so an import/export round trip loses nothing.
    metadata = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Task(WorkItem):
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="tasks")
    number = models.PositiveIntegerField()
    dependencies = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)

    class Meta:
        ordering = ["tag", "number"]
        constraints = [models.UniqueConstraint(fields=["tag", "number"], name="planning_task_unique_number")]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"

    @property
    def ref(self) -> str:
        return str(self.number)


class Subtask(WorkItem):
    parent = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="subtasks")
    number = models.PositiveIntegerField()
    dependencies = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)

    class Meta:
        ordering = ["parent", "number"]
        constraints = [models.UniqueConstraint(fields=["parent", "number"], name="planning_subtask_unique_number")]

    def __str__(self) -> str:
        return f"#{self.parent.number}.{self.number} {self.title}"

    @property
    def ref(self) -> str:
        return f"{self.parent.number}.{self.number}"


class PRD(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prds")
    title = models.CharField(max_length=200)
    text = models.TextField()
    file_name = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "PRD"

    def __str__(self) -> str:
        return self.title


class ComplexityReport(models.Model):
    """One analysis of one task; the newest entry per task is the current one."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="complexity_reports")
    score = models.PositiveSmallIntegerField()
    recommended_subtasks = models.PositiveSmallIntegerField(default=0)
    expansion_prompt = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    threshold = models.PositiveSmallIntegerField(default=5)
    call_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=1, score__lte=10), name="planning_complexity_score_1_10"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task}: {self.score}/10"

    @property
    def needs_expansion(self) -> bool:
        return self.score >= self.threshold


class TaskNote(models.Model):
    """A research note attached to a task (e.g. a research answer with its citations)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    text = models.TextField()
    citations = models.JSONField(default=list, blank=True)  # [{"title", "url", "snippet"}]
    source_ref = models.CharField(max_length=100, blank=True, help_text='e.g. "research.message:12"')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"Note on {self.task}"


class Revision(models.Model):
    """What an AI workflow or bulk operation did to one tag, restorable in one click."""

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="revisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    workflow = models.CharField(max_length=60)
    summary = models.CharField(max_length=500)
    snapshot_before = models.JSONField(default=dict)
    snapshot_after = models.JSONField(default=dict)
    # The job that produced it: a re-delivered Celery task finds it and does not apply twice.
    job = models.OneToOneField("taskmaster.Job", on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.workflow} on {self.tag}: {self.summary}"
