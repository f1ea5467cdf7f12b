"""Retrieval figures (issue 4): hybrid search latency and HNSW recall on a synthetic corpus,
and ingestion throughput against direct embedding.

The corpus (BENCH_RESEARCH_CHUNKS, default 100,000 chunks) is written straight into
research_chunk with COPY, and the HNSW index is dropped and rebuilt around the load.
Embedding 100k texts with the model would take the better part of an hour on 2 cores
and says nothing more about search. Its vectors are random but
clustered (unit vectors around CLUSTERS centroids) and its texts share cluster "topic"
words, so both halves of the hybrid search have real neighbours to find. Queries are
perturbed centroids plus two topic words of the same cluster, passed to the real
``hybrid_search`` as a precomputed vector; the model's query embedding is timed apart.

Ingestion runs a small real corpus through the real job (a jobs worker this section
starts, the app's inference worker) and then embeds exactly the chunks it produced with
``embed()`` in the job's batch size, alternately, so the ratio is the cost of the job's
own work (extraction, chunking, the one-transaction swap, tsvector, progress).
BENCH_RESEARCH_CHUNKS=0 runs the ingestion half alone.

Everything is created under one team (slug ``rbench-team``) and deleted at the end.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Table, inference_worker, median, p95

# 0 skips the synthetic-corpus half (latency, recall) and measures ingestion only.
CHUNKS = int(os.environ.get("BENCH_RESEARCH_CHUNKS", "100000"))
CLUSTERS = 200
DIMENSIONS = 384
NOISE = 0.9  # spread of a chunk around its centroid, relative to the centroid's unit length
WORDS_PER_CHUNK = 40
QUERIES = int(os.environ.get("BENCH_RESEARCH_QUERIES", "200"))
RECALL_QUERIES = 50
K = 5  # hits per hybrid query, as the research answer asks for
INGEST_DOCS = int(os.environ.get("BENCH_RESEARCH_INGEST_DOCS", "8"))
INGEST_ROUNDS = int(os.environ.get("BENCH_RESEARCH_INGEST_ROUNDS", "2"))
PREFIX = "rbench"
HNSW_INDEX = "research_chunk_embedding_hnsw"


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "ren", "tas", "vor", "qui", "zen", "dal", "fir", "gos", "hul", "pex", "ny", "bra"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


class Corpus:
    """Clustered unit vectors and texts, reproducible from the seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.centroids = _unit(self.np.standard_normal((CLUSTERS, DIMENSIONS)))
        general = sorted({_word(self.rng) for _ in range(3000)})
        self.general = general[:2000]
        taken = set(self.general)
        self.topics: list[list[str]] = []
        for _ in range(CLUSTERS):
            words: list[str] = []
            while len(words) < 8:
                w = _word(self.rng) + self.rng.choice(["ix", "on", "ar", "el"])
                if w not in taken:
                    taken.add(w)
                    words.append(w)
            self.topics.append(words)

    def vectors(self, clusters: np.ndarray) -> np.ndarray:
        noise = self.np.standard_normal((len(clusters), DIMENSIONS)) * (NOISE / np.sqrt(DIMENSIONS))
        return _unit(self.centroids[clusters] + noise).astype(np.float32)

    def text(self, cluster: int) -> str:
        words = self.rng.choices(self.topics[cluster], k=10) + self.rng.choices(self.general, k=WORDS_PER_CHUNK - 10)
        self.rng.shuffle(words)
        return " ".join(words)

    def query(self, cluster: int) -> tuple[str, list[float]]:
        words = " ".join(self.rng.sample(self.topics[cluster], 2))
        return words, [float(x) for x in self.vectors(np.array([cluster]))[0]]


def _cleanup() -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from taskmaster.models import Team

    # One DELETE: Django's cascade would load every one of the 100k chunks first.
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM research_chunk WHERE collection_id IN (SELECT c.id FROM research_collection c "
            f"JOIN {Team._meta.db_table} t ON t.id = c.team_id WHERE t.slug = %s)",
            [f"{PREFIX}-team"],
        )
    Team.objects.filter(slug=f"{PREFIX}-team").delete()
    get_user_model().objects.filter(username=f"{PREFIX}-user").delete()


def _seed() -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    from taskmaster.models import Membership, Role, Team

    _cleanup()
    team = Team.objects.create(name="Research bench", slug=f"{PREFIX}-team")
    user = get_user_model().objects.create_user(f"{PREFIX}-user", password=None)
    Membership.objects.create(user=user, team=team, role=Role.EDITOR)
    return team, user


def _fill(collection: Any, corpus: Corpus) -> tuple[float, list[int]]:
    """COPY the synthetic chunks in (through a staging table, so each row is indexed once). Seconds, clusters."""
    from django.db import connection
    from pgvector.psycopg import register_vector

    from research.models import Document, Source, Status

    source = Source.objects.create(collection=collection, kind=Source.Kind.TEXT, name="synthetic", status=Status.READY)
    per_doc = 100
    docs = Document.objects.bulk_create(
        Document(
            source=source,
            collection=collection,
            key=f"doc-{i}",
            title=f"Synthetic document {i}",
            doc_type="txt",
            sha256=f"{i:064d}",
            status=Status.READY,
            chunk_count=per_doc,
        )
        for i in range((CHUNKS + per_doc - 1) // per_doc)
    )
    clusters = corpus.np.integers(0, CLUSTERS, CHUNKS)
    started = time.perf_counter()
    connection.ensure_connection()
    raw = connection.connection
    register_vector(raw)
    with raw.cursor() as cur:
        # Bulk load, then build the HNSW index once (as after a restore): inserting 100k rows
        # into a live HNSW graph takes many times longer. The index is rebuilt in the finally.
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [HNSW_INDEX])
        row = cur.fetchone()
        if row is None:
            raise RuntimeError(f"index {HNSW_INDEX} is missing; run migrations")
        cur.execute(f"DROP INDEX {HNSW_INDEX}")
        try:
            _copy_rows(cur, docs, clusters, corpus, collection.pk, per_doc)
        finally:
            cur.execute("SET maintenance_work_mem = '256MB'")
            cur.execute(row[0])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE research_chunk")
    return time.perf_counter() - started, [int(c) for c in clusters]


def _copy_rows(
    cur: Any, docs: list[Any], clusters: np.ndarray, corpus: Corpus, collection_id: int, per_doc: int
) -> None:
    cur.execute(
        "CREATE TEMP TABLE rbench_stage (document_id bigint, position integer, text text, embedding vector(384))"
    )
    for start in range(0, CHUNKS, 5000):
        part = clusters[start : start + 5000]
        vectors = corpus.vectors(part)
        with cur.copy("COPY rbench_stage FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["bigint", "integer", "text", "vector"])
            for offset, (cluster, vector) in enumerate(zip(part, vectors, strict=True)):
                n = start + offset
                copy.write_row([docs[n // per_doc].pk, n % per_doc, corpus.text(int(cluster)), vector])
    cur.execute(
        "INSERT INTO research_chunk (document_id, collection_id, position, text, token_count, heading, "
        "embedding, search_vector) SELECT document_id, %s, position, text, 40, '', embedding, "
        "setweight(to_tsvector('english', text), 'C') FROM rbench_stage",
        [collection_id],
    )
    cur.execute("DROP TABLE rbench_stage")


def _exact_top(collection_id: int, vector: list[float], k: int) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT id FROM research_chunk WHERE collection_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            [collection_id, str(vector), k],
        )
        return [row[0] for row in cursor.fetchall()]


def _hnsw_top(collection_id: int, vector: list[float], k: int) -> tuple[list[int], bool]:
    """The vector half of hybrid_search, with its own ef_search and iterative-scan settings."""
    from django.db import connection, transaction

    from research.selectors import _set_search_params

    with transaction.atomic(), connection.cursor() as cursor:
        _set_search_params(max(k * 3, 20))
        sql = "SELECT id FROM research_chunk WHERE collection_id = %s ORDER BY embedding <=> %s::vector LIMIT %s"
        cursor.execute("EXPLAIN " + sql, [collection_id, str(vector), k])
        used_index = "research_chunk_embedding_hnsw" in " ".join(r[0] for r in cursor.fetchall())
        cursor.execute(sql, [collection_id, str(vector), k])
        return [row[0] for row in cursor.fetchall()], used_index


def _search(collection: Any, user: Any, corpus: Corpus) -> tuple[list[float], list[float], float, str]:
    from research.selectors import hybrid_search

    latencies: list[float] = []
    top_right = 0
    for i in range(QUERIES + 20):
        cluster = i % CLUSTERS
        words, vector = corpus.query(cluster)
        started = time.perf_counter()
        hits = hybrid_search(user=user, query=words, collection_ids=[collection.pk], k=K, query_vector=vector)
        elapsed = (time.perf_counter() - started) * 1000
        if i >= 20:  # the first queries warm the caches
            latencies.append(elapsed)
            top_right += int(bool(hits) and _cluster_of(hits[0].text, corpus) == cluster)
    recalls: list[float] = []
    used = True
    for i in range(RECALL_QUERIES):
        _, vector = corpus.query((i * 7) % CLUSTERS)
        exact = set(_exact_top(collection.pk, vector, 10))
        approx, used_index = _hnsw_top(collection.pk, vector, 10)
        used = used and used_index
        recalls.append(len(exact & set(approx)) / 10)
    return latencies, recalls, top_right / max(1, QUERIES), "HNSW index" if used else "NOT the HNSW index"


def _cluster_of(text: str, corpus: Corpus) -> int:
    words = set(text.split())
    return max(range(CLUSTERS), key=lambda c: len(words & set(corpus.topics[c])))


def _ingest_texts(round_no: int) -> dict[str, str]:
    rng = random.Random(100 + round_no)
    vocabulary = [_word(rng) for _ in range(600)]
    texts = {}
    for d in range(INGEST_DOCS):
        paragraphs = [" ".join(rng.choices(vocabulary, k=60)) + "." for _ in range(6)]
        texts[f"Round {round_no} document {d}"] = "\n\n".join(paragraphs)
    return texts


def _jobs_worker() -> subprocess.Popen[bytes]:
    from django.conf import settings

    from taskmaster import embedded
    from taskmaster.celery import app

    env = dict(os.environ)
    env.update(embedded.child_env(Path(settings.DATA_DIR)))
    env.update({"DJANGO_SETTINGS_MODULE": "taskmaster.settings", "PYTHONUNBUFFERED": "1"})
    cmd = [sys.executable, "-m", "celery", "-A", "taskmaster", "worker", "-Q", "jobs", "-c", "1"]
    cmd += ["-n", f"{PREFIX}jobs@%h", "-l", "WARNING", "--without-mingle", "--without-gossip"]
    log = open(Path(settings.DATA_DIR) / "bench-research-jobs.log", "ab")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(node.startswith(f"{PREFIX}jobs@") for reply in replies for node in reply):
            return proc
    proc.kill()
    raise RuntimeError("jobs worker did not start; see bench-research-jobs.log")


def _wait(job: Any, timeout: float = 900) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.05)
    raise RuntimeError(f"ingestion job {job.pk} did not finish: {job.message}")


def _ingestion(team: Any) -> tuple[list[float], list[float], list[float], list[float], list[float], int]:
    """chunks/s of the job (its own clock, and wall clock from enqueue) and of direct embed(), and their
    ratio, per round. The two alternate which goes first, so a drift in the machine's load favours neither."""
    from research import services
    from research.extract import chunk_sections, extract
    from research.ingest import EMBED_BATCH
    from research.models import Chunk
    from taskmaster.llm import CallContext, embed
    from taskmaster.llm.models import LLMCall

    job_rates, wall_rates, direct_rates, ratios, embed_shares = [], [], [], [], []
    chunks = 0
    for round_no in range(INGEST_ROUNDS):
        collection = services.collection_create(team=team, name=f"Ingest {round_no}", slug=f"ingest-{round_no}")
        docs = _ingest_texts(round_no)
        # The chunks the job will make (text sources are read as Markdown), to embed directly.
        texts = [
            piece.text
            for title, text in docs.items()
            for piece in chunk_sections(
                extract(f"{title}.md", text.encode()).sections,
                size=collection.chunk_size,
                overlap=collection.chunk_overlap,
            )
        ]

        def direct(texts: list[str] = texts) -> float:
            ctx = CallContext(feature="bench.research.embed")
            started = time.perf_counter()
            for start in range(0, len(texts), EMBED_BATCH):
                embed(texts[start : start + EMBED_BATCH], context=ctx)
            return len(texts) / (time.perf_counter() - started)

        if round_no % 2:
            direct_rates.append(direct())
        ids = [
            services.source_add_text(collection=collection, user=None, title=title, text=text).pk
            for title, text in docs.items()
        ]
        started = time.perf_counter()
        job = _wait(services.ingest_start(collection=collection, user=None, source_ids=ids))
        wall = time.perf_counter() - started
        if job.status != "succeeded":
            raise RuntimeError(f"ingestion failed: {job.error}")
        if round_no % 2 == 0:
            direct_rates.append(direct())
        stored = list(
            Chunk.objects.filter(collection=collection)
            .order_by("document_id", "position")
            .values_list("text", flat=True)
        )
        if stored != texts:
            raise RuntimeError("the job's chunks differ from the ones embedded directly")
        chunks = int(job.result["chunks"])
        # The job's own clock, unrounded (its result rounds chunks/s to 0.1).
        job_rates.append(chunks / (job.finished_at - job.started_at).total_seconds())
        wall_rates.append(chunks / wall)
        ratios.append(job_rates[-1] / direct_rates[-1])
        # How much of the job was the model's own work: what is left is the job's overhead,
        # a figure the load of other processes on the machine barely moves.
        calls = LLMCall.objects.filter(
            team=team, feature="research.ingest", created_at__gte=job.started_at, created_at__lte=job.finished_at
        )
        embed_ms = sum((c.total_ms or 0) + (c.queue_wait_ms or 0) for c in calls)
        embed_shares.append(embed_ms / 1000 / (job.finished_at - job.started_at).total_seconds())
    return job_rates, wall_rates, direct_rates, ratios, embed_shares, chunks


def _query_embedding_ms() -> list[float]:
    from taskmaster.llm import CallContext, embed

    times = []
    for i in range(20):
        started = time.perf_counter()
        embed(f"how do zephyr backups work, variant {i}?", context=CallContext(feature="bench.research.query"))
        times.append((time.perf_counter() - started) * 1000)
    return times[5:]


def run() -> str:
    from research import services
    from taskmaster.llm.registry import model_for_role

    emb = model_for_role("embedding")
    corpus = Corpus()
    team, user = _seed()
    out: list[str] = []
    try:
        if CHUNKS > 0:
            collection = services.collection_create(team=team, name="Synthetic", slug="synthetic")
            fill_s, _ = _fill(collection, corpus)
            latencies, recalls, top_right, plan = _search(collection, user, corpus)
        with inference_worker(emb.queue_name, name=f"{PREFIX}embed"):
            jobs = _jobs_worker()
            try:
                embed_ms = _query_embedding_ms()
                job_rates, wall_rates, direct_rates, ratios, embed_shares, chunks = _ingestion(team)
            finally:
                jobs.terminate()
                try:
                    jobs.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    jobs.kill()
    finally:
        _cleanup()

    if CHUNKS > 0:
        table = Table(
            f"Retrieval on {CHUNKS:,} synthetic chunks ({CLUSTERS} clusters, 384-d, COPY-loaded and HNSW-indexed in "
            f"{fill_s:.0f} s); {QUERIES} hybrid queries, k={K}",
            "value",
            "",
        )
        table.note(
            "hybrid query latency p50, ms (SQL: vector + full-text + RRF + context window)", f"{median(latencies):.1f}"
        )
        table.note("hybrid query latency p95, ms", f"{p95(latencies):.1f}", "≤ 50")
        table.note(
            "query embedding p50 / p95, ms (add to the above for a full search)",
            f"{median(embed_ms):.1f} / {p95(embed_ms):.1f}",
        )
        table.note(
            f"HNSW recall@10 vs exact scan ({RECALL_QUERIES} queries, via {plan})",
            f"{sum(recalls) / len(recalls):.3f}",
            "≥ 0.95",
        )
        table.note("min recall@10 of one query", f"{min(recalls):.2f}")
        table.note("top hit from the query's cluster", f"{top_right:.0%}")
        table.note("load average at the end (1 / 5 / 15 min)", " / ".join(f"{x:.1f}" for x in os.getloadavg()))
        out.append(table.render())
    ratio = median(job_rates) / median(direct_rates)
    ingest = Table(
        f"Ingestion: the real job vs direct embed() of the same {chunks} chunks ({INGEST_DOCS} text documents), "
        f"{INGEST_ROUNDS} rounds, medians",
        "embed() (a)",
        "job (b)",
    )
    ingest.add("chunks/s (job: its own clock)", median(direct_rates), median(job_rates), target="b/a ≥ 0.9")
    ingest.add("chunks/s (job: wall clock from enqueue)", median(direct_rates), median(wall_rates))
    ingest.note("ratio, job's own clock", f"{ratio:.2f}")
    ingest.note(
        "ratio per round (job and embed() back to back, order alternating)",
        " / ".join(f"{r:.2f}" for r in ratios) + f" (median {median(ratios):.2f})",
    )
    ingest.note(
        "share of the job's time inside embed() calls (worker-side), per round",
        " / ".join(f"{r:.0%}" for r in embed_shares),
    )
    out.append(ingest.render())
    return "".join(out)
