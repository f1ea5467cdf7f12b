"""Quality validation: evaluation suites and runs, and UAT sessions.

Every row reaches a ``taskmaster.Team``: suites and UAT sessions directly, the rest
through them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Suite(models.Model):
    class Kind(models.TextChoices):
        RESEARCH = "research", "Research (question → answer with sources)"
        PLANNING_PRD = "planning_prd", "Planning (PRD → task titles)"
        COMPLEXITY = "complexity", "Complexity (task → score)"

    team = models.ForeignKey("taskmaster.Team", on_delete=models.CASCADE, related_name="eval_suites")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=300, blank=True)
    # Research suites search this collection; it is part of the suite's definition.
    collection = models.ForeignKey(
        "research.Collection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    builtin = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="eval_suite_unique_name")]

    def __str__(self) -> str:
        return self.name


class SuiteItem(models.Model):
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(default=0)
    # External id (e.g. a Task Master taskId) so a later baseline import finds the item.
    key = models.CharField(max_length=60)
    title = models.CharField(max_length=300, blank=True, help_text="Task title (complexity items).")
    text = models.TextField(help_text="Question, PRD, or task description.")
    expected_answer = models.TextField(blank=True)
    expected_sources = models.JSONField(default=list, blank=True)
    expected_tasks = models.JSONField(default=list, blank=True)
    expected_score = models.FloatField(null=True, blank=True)
    # What the system being replaced produced: {"answer", "sources"} | {"tasks"} | {"score"}.
    baseline = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["suite", "key"], name="eval_item_unique_key")]

    def __str__(self) -> str:
        return self.title or self.text[:60]


class EvalRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="runs")
    model_name = models.CharField(max_length=100)
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    job = models.ForeignKey("taskmaster.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # {"model": {metric: value}, "baseline": {metric: value}, "ratio": {metric: value}}
    scores = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.suite} · {self.model_name} · #{self.pk}"

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()) if k != "model")
        return f"#{self.pk} {self.model_name}" + (f" ({extra})" if extra else "")


class EvalResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(SuiteItem, on_delete=models.CASCADE, related_name="results")
    output = models.JSONField(default=dict, blank=True)
    scores = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item__position", "item__pk"]
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="eval_result_unique_item")]

    def __str__(self) -> str:
        return f"run {self.run_id} · item {self.item_id}"


# --- UAT -----------------------------------------------------------------------------


class UatSession(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        ARCHIVED = "archived", "Archived"

    team = models.ForeignKey("taskmaster.Team", on_delete=models.CASCADE, related_name="uat_sessions")
    coordinator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    starts_on = models.DateField()
    ends_on = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    testers = models.ManyToManyField(settings.AUTH_USER_MODEL, through="UatTester", related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name


class UatTester(models.Model):
    session = models.ForeignKey(UatSession, on_delete=models.CASCADE, related_name="invitations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    invited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]
        constraints = [models.UniqueConstraint(fields=["session", "user"], name="uat_tester_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.session}"


class Scenario(models.Model):
    session = models.ForeignKey(UatSession, on_delete=models.CASCADE, related_name="scenarios")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=200)
    steps = models.TextField()
    acceptance_criteria = models.TextField()
    # Where in the product the scenario starts (a path on this site, e.g. /research/).
    start_path = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.title


class Verdict(models.Model):
    class Outcome(models.TextChoices):
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        BLOCKED = "blocked", "Blocked"

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="verdicts")
    tester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    comment = models.TextField(blank=True)
    screenshot = models.FileField(upload_to="uat/%Y/%m/", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scenario__position", "tester__username"]
        constraints = [models.UniqueConstraint(fields=["scenario", "tester"], name="uat_verdict_unique")]

    def __str__(self) -> str:
        return f"{self.tester}: {self.outcome} on {self.scenario}"
