"""The knowledge base (collections, sources, documents, chunks) and research threads."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from taskmaster.models import Job, LLMModel, Team

EMBEDDING_DIMENSIONS = 384


class Collection(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    # Empty: the model holding the "embedding" role at indexing time.
    embedding_model = models.ForeignKey(
        LLMModel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        limit_choices_to={"kind": "embedding"},
    )
    chunk_size = models.PositiveIntegerField(default=120, help_text="Words per chunk (20-300).")
    chunk_overlap = models.PositiveIntegerField(default=20, help_text="Words shared by neighbouring chunks.")
    # Bumped on every content change; the answer cache keys on it.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "slug"], name="research_collection_unique_slug")]

    def __str__(self) -> str:
        return self.name


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    INDEXING = "indexing", "Indexing"
    READY = "ready", "Ready"
    DUPLICATE = "duplicate", "Duplicate"
    FAILED = "failed", "Failed"


class Source(models.Model):
    class Kind(models.TextChoices):
        UPLOAD = "upload", "Uploaded file"
        TEXT = "text", "Pasted text"
        URL = "url", "Web page"
        FOLDER = "folder", "Server folder"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to="research/%Y/%m/", blank=True, max_length=300)
    text = models.TextField(blank=True)
    url = models.URLField(blank=True, max_length=1000)
    path = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    # Identifies the document inside its source (a folder holds many files).
    key = models.CharField(max_length=500)
    title = models.CharField(max_length=300)
    doc_type = models.CharField(max_length=10)
    sha256 = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # Which embedding model produced the chunks; a different one means re-index.
    embedded_with = models.CharField(max_length=80, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="research_document_unique_key")]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage. Rows exist only for fully indexed documents: they are written in one
    transaction per document, so search never sees half a document."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField(help_text="Whitespace-separated words.")
    page = models.PositiveIntegerField(null=True, blank=True)
    heading = models.CharField(max_length=300, blank=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    search_vector = SearchVectorField(null=True)

    class Meta:
        ordering = ["document", "position"]
        indexes = [
            HnswIndex(
                name="research_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="research_chunk_search_gin"),
            models.Index(fields=["document", "position"], name="research_chunk_doc_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.document} #{self.position}"


class Thread(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="research_threads")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="research_threads")
    title = models.CharField(max_length=200, default="New research")
    shared = models.BooleanField(default=False, help_text="Visible to the whole team (read-only for others).")
    collections = models.ManyToManyField(Collection, blank=True, related_name="threads")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Kind(models.TextChoices):
        ANSWER = "answer", "Answer"
        REFUSAL = "refusal", "No relevant passages"
        CACHED = "cached", "Cached answer"
        RESEARCH = "research", "Recursive research"
        FAILED = "failed", "Failed"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ANSWER)
    content = models.TextField()
    # The question actually used for retrieval after rewriting a follow-up.
    standalone_query = models.TextField(blank=True)
    mode = models.CharField(max_length=10, blank=True)
    call_id = models.CharField(max_length=36, blank=True, help_text="LLMCall id of the answer.")
    followups = models.JSONField(default=list, blank=True)
    tree = models.JSONField(default=dict, blank=True)
    tokens_used = models.PositiveIntegerField(default=0)
    token_budget = models.PositiveIntegerField(default=0)
    # What the research.answer QA gate found wrong; the answer is shown, flagged, not discarded.
    qa_problems = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Citation(models.Model):
    """Passage [number] of an answer: the exact chunk, plus a snapshot so a later
    re-index cannot make the citation drift or vanish."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="citations")
    number = models.PositiveSmallIntegerField()
    chunk = models.ForeignKey(Chunk, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    chunk_ref = models.BigIntegerField(help_text="The chunk id at answer time.")
    document_title = models.CharField(max_length=300)
    page = models.PositiveIntegerField(null=True, blank=True)
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    score = models.FloatField(default=0)
    used = models.BooleanField(default=False, help_text="The answer text refers to [number].")

    class Meta:
        ordering = ["message", "number"]
        constraints = [models.UniqueConstraint(fields=["message", "number"], name="research_citation_unique")]

    def __str__(self) -> str:
        return f"[{self.number}] {self.document_title}"


class AnswerCache(models.Model):
    key = models.CharField(max_length=64, unique=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    model_name = models.CharField(max_length=80)
    answer = models.TextField()
    chunk_ids = models.JSONField(default=list)
    followups = models.JSONField(default=list, blank=True)
    call_id = models.CharField(max_length=36, blank=True)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.question[:60]
