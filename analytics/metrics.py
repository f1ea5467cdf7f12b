"""Prometheus metrics (series prefixed ``taskmaster_``).

HTTP metrics are counted per web process by :class:`HttpMetricsMiddleware`. Everything about
model calls is computed at scrape time from the ledger and Redis by :class:`RuntimeCollector`,
because ledger rows are written by worker processes that a per-process counter would miss.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from taskmaster.llm import queueing
from taskmaster.models import Job, LLMCall, LLMModel

REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter(
    "taskmaster_http_requests",
    "HTTP requests served, by view and status.",
    ["method", "view", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "taskmaster_http_request_duration_seconds",
    "Time to produce an HTTP response.",
    ["method", "view"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _labels(request: HttpRequest, response: HttpResponse | None) -> tuple[str, str, str]:
    match = getattr(request, "resolver_match", None)
    view = (match.view_name or "unnamed") if match is not None else "unmatched"
    method = request.method if request.method in METHODS else "OTHER"
    return method or "OTHER", view, str(response.status_code if response is not None else 500)


class HttpMetricsMiddleware:
    """Counts requests and their latency, labelled by URL name (bounded), never by raw path."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _observe(self, request: HttpRequest, response: HttpResponse | None, started: float) -> None:
        method, view, status = _labels(request, response)
        HTTP_REQUESTS.labels(method, view, status).inc()
        HTTP_LATENCY.labels(method, view).observe(time.perf_counter() - started)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        started, response = time.perf_counter(), None
        try:
            response = self.get_response(request)
            return response
        finally:
            self._observe(request, response, started)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started, response = time.perf_counter(), None
        try:
            response = await self.get_response(request)
            return response
        finally:
            self._observe(request, response, started)


def _histogram(name: str, doc: str, column: str, buckets: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["model", "feature"])
    aggregates: dict[str, Any] = {
        f"b{i}": Count("id", filter=Q(**{f"{column}__lte": b * 1000})) for i, b in enumerate(buckets)
    }
    aggregates["n"] = Count("id")
    aggregates["total"] = Sum(column)
    rows = LLMCall.objects.filter(**{f"{column}__isnull": False}).values("model_name", "feature").annotate(**aggregates)
    for row in cast(Iterable[dict[str, Any]], rows.order_by("model_name", "feature")):
        family.add_metric(
            [row["model_name"], row["feature"]],
            [(str(b), row[f"b{i}"]) for i, b in enumerate(buckets)] + [("+Inf", row["n"])],
            (row["total"] or 0.0) / 1000,
        )
    return family


class RuntimeCollector(Collector):
    """Reads the ledger, queue depths and jobs at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # never query the database at registration (import) time

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "taskmaster_llm_calls",
            "Model calls, by model, feature and outcome.",
            labels=["model", "feature", "outcome"],
        )
        tokens = CounterMetricFamily(
            "taskmaster_llm_tokens",
            "Tokens processed, by model, feature and direction.",
            labels=["model", "feature", "direction"],
        )
        rows = (
            LLMCall.objects.values("model_name", "feature", "outcome")
            .annotate(n=Count("id"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
            .order_by("model_name", "feature")
        )
        token_totals: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            calls.add_metric([row["model_name"], row["feature"], row["outcome"]], row["n"])
            t = token_totals.setdefault((row["model_name"], row["feature"]), [0, 0])
            t[0] += row["p"] or 0
            t[1] += row["c"] or 0
        for (model, feature), (p, c) in token_totals.items():
            tokens.add_metric([model, feature, "prompt"], p)
            tokens.add_metric([model, feature, "completion"], c)
        yield calls
        yield tokens
        errors = CounterMetricFamily(
            "taskmaster_llm_errors", "Failed model calls, by model and error class.", labels=["model", "error_class"]
        )
        failed = LLMCall.objects.filter(outcome="error").values("model_name", "error_class").annotate(n=Count("id"))
        for err in failed:
            errors.add_metric([err["model_name"], err["error_class"] or "unknown"], err["n"])
        yield errors
        yield _histogram("taskmaster_llm_ttft_seconds", "Time to first token.", "ttft_ms", TTFT_BUCKETS_S)
        yield _histogram("taskmaster_llm_latency_seconds", "Total call latency.", "total_ms", LATENCY_BUCKETS_S)
        depth = GaugeMetricFamily(
            "taskmaster_llm_queue_depth", "Requests waiting for a model's worker.", labels=["model", "queue"]
        )
        for llm_model in LLMModel.objects.filter(enabled=True).order_by("name"):
            depth.add_metric([llm_model.name, llm_model.queue_name], queueing.depth(llm_model.queue_name))
        yield depth
        running = Job.objects.filter(kind="research.ingest", status=Job.Status.RUNNING)
        jobs = GaugeMetricFamily("taskmaster_ingestion_jobs_running", "Ingestion jobs running now.")
        jobs.add_metric([], running.count())
        yield jobs
        done = GaugeMetricFamily(
            "taskmaster_ingestion_items_done", "Items done by running ingestion jobs.", labels=["job", "team"]
        )
        total = GaugeMetricFamily(
            "taskmaster_ingestion_items_total", "Items to do in running ingestion jobs.", labels=["job", "team"]
        )
        for job in running.select_related("team"):
            done.add_metric([str(job.pk), job.team.slug], job.done)
            total.add_metric([str(job.pk), job.team.slug], job.total)
        yield done
        yield total


REGISTRY.register(RuntimeCollector())
