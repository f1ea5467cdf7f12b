"""Analytics tables: findings, their recommendations, advisory settings and config revisions.

The ledger itself (``taskmaster.LLMCall``) and feedback live in the core; analytics only
reads them. A ``team`` of NULL means "site-wide": only site admins see such rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Finding(models.Model):
    class Kind(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Failure rate"
        LOW_RATING = "low_rating", "Low ratings"
        TTFT_CONTEXT = "ttft_context", "TTFT grows with context"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        APPLIED = "applied", "Applied"
        DISMISSED = "dismissed", "Dismissed"
        RESOLVED = "resolved", "No longer seen"

    team = models.ForeignKey(
        "taskmaster.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="analytics_findings"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Canonical "dim=value, dim=value" description of the group, e.g. "model=x, feature=y".
    subject = models.CharField(max_length=300)
    dims = models.JSONField(default=dict, help_text="The group's dimensions as a dict.")
    summary = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict)
    p_value = models.FloatField()
    effect_size = models.FloatField(help_text="Rate ratio (failures, ratings) or correlation r (TTFT).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["status", "p_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "kind", "subject"], name="finding_unique_subject", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class Recommendation(models.Model):
    class Action(models.TextChoices):
        SWITCH_ROLE = "switch_role", "Switch role to another model"
        RAISE_TOKENS = "raise_tokens", "Raise token budget"
        LOWER_CONTEXT = "lower_context", "Lower the context"
        SPLIT_PRD = "split_prd", "Split long PRDs"
        PREFER_TEMPLATE = "prefer_template", "Prefer another prompt template"
        REINDEX = "reindex", "Re-index collection"
        ADVISORY = "advisory", "Investigate (no automatic change)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        APPLIED = "applied", "Applied"
        DISMISSED = "dismissed", "Dismissed"
        ROLLED_BACK = "rolled_back", "Rolled back"

    finding = models.OneToOneField(Finding, on_delete=models.CASCADE, related_name="recommendation")
    action = models.CharField(max_length=20, choices=Action.choices)
    title = models.CharField(max_length=300)
    rationale = models.TextField()
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    evaluation = models.JSONField(default=dict, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def applicable(self) -> bool:
        return self.action != self.Action.ADVISORY


class Setting(models.Model):
    """Advisory key/value settings written by analytics; other apps may read them.

    Keys: ``routing.pin.<role>`` (model name), ``llm.max_tokens.<schema>``, ``llm.context_budget.<model>``,
    ``planning.prd_split_tokens``, ``prompt.template.<feature>``, ``research.reindex.<collection>``.
    """

    team = models.ForeignKey(
        "taskmaster.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="analytics_settings"
    )
    key = models.CharField(max_length=150)
    value = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="analytics_setting_unique", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}"


class ConfigRevision(models.Model):
    """One applied change (before/after), so it can be rolled back."""

    team = models.ForeignKey(
        "taskmaster.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="analytics_revisions"
    )
    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.SET_NULL, null=True, blank=True, related_name="revisions"
    )
    description = models.CharField(max_length=300)
    # {"role_default:<role>": model name | null, "setting:<team id or *>:<key>": value | null}
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.description


# The quality module's tables (evaluation suites, UAT sessions) belong to this app.
from analytics.quality.models import (  # noqa: E402,F401
    EvalResult,
    EvalRun,
    Scenario,
    Suite,
    SuiteItem,
    UatSession,
    UatTester,
    Verdict,
)
