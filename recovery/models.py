"""Incidents (diagnosed failures), their automatic recoveries, registry revisions and alert channels."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Cause(models.TextChoices):
    MODEL_FILE = "model_file", "Model file missing or corrupt"
    MODEL_UNAVAILABLE = "model_unavailable", "Model unavailable"
    OUT_OF_MEMORY = "out_of_memory", "Out of memory"
    CONTEXT_OVERFLOW = "context_overflow", "Context overflow"
    TRUNCATED = "truncated", "Output truncated"
    SCHEMA_VALIDATION = "schema_validation", "Schema validation failure"
    TIMEOUT = "timeout", "Timeout"
    WORKER_LOST = "worker_lost", "Worker lost"
    RETRIEVAL_EMPTY = "retrieval_empty", "Retrieval empty"
    DATABASE_UNAVAILABLE = "database_unavailable", "Database unavailable"
    BROKER_UNAVAILABLE = "broker_unavailable", "Broker unavailable"
    RATE_LIMITED = "rate_limited", "Rate limited"
    QA_FAILED = "qa_failed", "QA gate failed"
    UNKNOWN = "unknown", "Unknown"


class Severity(models.IntegerChoices):
    INFO = 10, "Info"
    WARNING = 20, "Warning"
    ERROR = 30, "Error"
    CRITICAL = 40, "Critical"


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RECOVERING = "recovering", "Recovering"
        RECOVERED = "recovered", "Recovered"
        FAILED = "failed", "Failed"
        RESOLVED = "resolved", "Resolved"

    # Null: not attributable to a team (a worker- or site-wide failure); site admins only.
    team = models.ForeignKey(
        "taskmaster.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="recovery_incidents"
    )
    cause = models.CharField(max_length=30, choices=Cause.choices, db_index=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.ERROR)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    fingerprint = models.CharField(max_length=200, db_index=True)
    feature = models.CharField(max_length=60, blank=True)
    model_name = models.CharField(max_length=80, blank=True)
    message = models.TextField(blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen", "-pk"]
        constraints = [
            # One unresolved incident per fingerprint and team: new failures join it.
            models.UniqueConstraint(
                fields=["fingerprint", "team"],
                condition=~models.Q(status="resolved"),
                name="recovery_one_live_incident",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_cause_display()} in {self.feature or 'unknown feature'} ({self.status})"

    @property
    def live(self) -> bool:
        return self.status != self.Status.RESOLVED


class Evidence(models.Model):
    """One failed call or job behind an incident."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="evidence")
    call_id = models.CharField(max_length=36, blank=True, help_text="LLMCall (ledger) id of the failed call.")
    job_id = models.PositiveIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=60, blank=True)
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    input_chars = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["call_id"], condition=~models.Q(call_id=""), name="recovery_evidence_call"),
            models.UniqueConstraint(fields=["job_id"], condition=models.Q(job_id__isnull=False), name="recovery_job"),
        ]

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message[:60]}"


class Recovery(models.Model):
    """One automatic recovery of one failed call: the plan that ran and how it ended."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        RECOVERED = "recovered", "Recovered"
        FAILED = "failed", "Failed"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="recoveries")
    first_call_id = models.CharField(max_length=36, blank=True)
    plan = models.JSONField(default=list, help_text="The ordered actions of the cause's plan.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    failed_at = models.DateTimeField(help_text="When the first call failed.")
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Failure to success (or to giving up).")
    final_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-failed_at", "-pk"]
        verbose_name_plural = "recoveries"

    def __str__(self) -> str:
        return f"recovery of {self.incident_id}: {self.outcome}"


class RecoveryStep(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"
        GAVE_UP = "gave_up", "Gave up"

    recovery = models.ForeignKey(Recovery, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=30)
    params = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    detail = models.TextField(blank=True)
    call_id = models.CharField(max_length=36, blank=True, help_text="The retried call's ledger id.")
    started_at = models.DateTimeField()
    duration_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["recovery", "number"]
        constraints = [models.UniqueConstraint(fields=["recovery", "number"], name="recovery_step_unique")]

    def __str__(self) -> str:
        return f"{self.number}. {self.action} ({self.outcome})"

    @property
    def label(self) -> str:
        from recovery.plans import ACTION_LABELS

        return ACTION_LABELS.get(self.action, self.action)


class RegistryRevision(models.Model):
    """A snapshot of one model-registry row before and after an edit, restorable from the rollback center."""

    class Kind(models.TextChoices):
        MODEL = "model", "LLM model"
        ROLE_DEFAULT = "role_default", "Role default"

    kind = models.CharField(max_length=15, choices=Kind.choices)
    object_key = models.CharField(max_length=100, help_text="LLMModel pk, or the role name.")
    description = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True, help_text="Null: the row did not exist.")
    after = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.description


class AlertChannel(models.Model):
    """Where incidents at or above ``min_severity`` are sent; configured in the admin."""

    name = models.CharField(max_length=100)
    team = models.ForeignKey(
        "taskmaster.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        help_text="Empty: incidents of every team (and site-wide ones).",
    )
    emails = models.TextField(blank=True, help_text="E-mail addresses, one per line or comma-separated.")
    webhook_url = models.URLField(blank=True, help_text="Receives a JSON POST per alert.")
    min_severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.ERROR)
    rate_limit_minutes = models.PositiveIntegerField(default=30, help_text="At most one alert per incident kind per …")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def email_list(self) -> list[str]:
        return [e.strip() for e in self.emails.replace(",", "\n").splitlines() if e.strip()]


class AlertSent(models.Model):
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="sent")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=200, db_index=True)
    sent_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ok = models.BooleanField(default=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"alert {self.fingerprint} via {self.channel}"
