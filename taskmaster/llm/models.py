"""Model registry and the LLM call ledger (app label ``taskmaster``)."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class ModelRole(models.TextChoices):
    MAIN = "main", "Main"
    RESEARCH = "research", "Research"
    FALLBACK = "fallback", "Fallback"
    EMBEDDING = "embedding", "Embedding"


def default_sampling() -> dict[str, float]:
    return {"temperature": 0.2, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}


class LLMModel(models.Model):
    name = models.SlugField(max_length=80, unique=True, help_text="Also the model id in the /v1 API.")
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.CHAT)
    file_path = models.CharField(max_length=500, help_text="GGUF file, relative to MODELS_DIR (or absolute inside it).")
    file_size = models.BigIntegerField(null=True, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Recorded on save; checked on load.")
    context_length = models.PositiveIntegerField(default=2048)
    n_threads = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty: the cores the worker may use (its CPU affinity)."
    )
    n_batch = models.PositiveIntegerField(default=512)
    n_gpu_layers = models.IntegerField(default=0)
    chat_format = models.CharField(max_length=50, blank=True, help_text="Override llama.cpp's chat format name.")
    chat_template = models.TextField(blank=True, help_text="Override the GGUF's Jinja chat template.")
    sampling = models.JSONField(default=default_sampling, blank=True)
    roles = models.JSONField(default=list, blank=True, help_text="Roles this model can serve.")
    enabled = models.BooleanField(default=True)
    queue = models.CharField(max_length=100, blank=True, help_text="Celery queue; empty means llm.<name>.")
    available = models.BooleanField(default=False, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    hf_repo = models.CharField(max_length=200, blank=True)
    hf_filename = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "taskmaster"
        ordering = ["name"]
        verbose_name = "LLM model"

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        return self.queue or f"llm.{self.name}"

    @property
    def path(self) -> Path:
        p = Path(self.file_path)
        return p if p.is_absolute() else Path(settings.MODELS_DIR) / p


class RoleDefault(models.Model):
    """Which model a role uses unless routing or a caller chooses another."""

    role = models.CharField(max_length=20, choices=ModelRole.choices, unique=True)
    model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="default_for")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "taskmaster"
        ordering = ["role"]

    def __str__(self) -> str:
        return f"{self.role} → {self.model}"


class ModelLoadStatus(models.Model):
    """One row per (model, worker process): what each worker has loaded."""

    class State(models.TextChoices):
        LOADING = "loading"
        LOADED = "loaded"
        ERROR = "error"
        UNLOADED = "unloaded"

    model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="load_statuses")
    worker = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=State.choices)
    error = models.TextField(blank=True)
    load_seconds = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "taskmaster"
        constraints = [models.UniqueConstraint(fields=["model", "worker"], name="load_status_unique")]
        verbose_name_plural = "model load statuses"

    def __str__(self) -> str:
        return f"{self.model} on {self.worker}: {self.state}"


class Outcome(models.TextChoices):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


class LLMCall(models.Model):
    """The ledger: one row per model call. Analytics and recovery read only this."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    team = models.ForeignKey("taskmaster.Team", on_delete=models.SET_NULL, null=True, blank=True)
    feature = models.CharField(max_length=60, db_index=True)
    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.CHAT)
    role = models.CharField(max_length=20, blank=True)
    model = models.ForeignKey(LLMModel, on_delete=models.SET_NULL, null=True, blank=True)
    model_name = models.CharField(max_length=80)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    input_chars = models.PositiveIntegerField(default=0)
    queue_wait_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    schema_name = models.CharField(max_length=100, blank=True)
    template_version = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK, db_index=True)
    error_class = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    cache_hit = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    routing = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        app_label = "taskmaster"
        ordering = ["-created_at"]
        verbose_name = "LLM call"
        indexes = [models.Index(fields=["team", "created_at"]), models.Index(fields=["model_name", "feature"])]

    def __str__(self) -> str:
        return f"{self.feature} on {self.model_name} ({self.outcome})"


class Feedback(models.Model):
    """A person's rating of one model output, linked to its ledger call.

    It lives in the core so research, planning and the playground can record it
    without importing analytics, which only reads it.
    """

    class Rating(models.IntegerChoices):
        DOWN = -1, "Thumbs down"
        UP = 1, "Thumbs up"

    call = models.ForeignKey(LLMCall, on_delete=models.SET_NULL, null=True, blank=True, related_name="feedback")
    team = models.ForeignKey("taskmaster.Team", on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    feature = models.CharField(max_length=60, db_index=True, help_text="e.g. research.answer, planning.expand")
    # What was rated, as "<app_label>.<model>:<pk>", so the feature app keeps ownership of its objects.
    target = models.CharField(max_length=100, blank=True)
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        app_label = "taskmaster"
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"
        constraints = [models.UniqueConstraint(fields=["user", "target"], name="feedback_one_per_user_target")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.feature}"
