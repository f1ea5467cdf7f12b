"""Reads of the analytics app: ledger aggregates (in SQL), feedback, findings, settings.

Every read starts from a :class:`Scope`, whose team was resolved through ``team_for`` (404
for outsiders) or is None for a site admin looking at every team.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Avg, Count, F, FloatField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.http import Http404
from django.utils import timezone

from analytics.models import ConfigRevision, Finding, Recommendation, Setting
from taskmaster.access import AnyUser, Perm, get_scoped, is_site_admin, scoped
from taskmaster.models import Feedback, LLMCall, Team

PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
BREAKDOWNS: dict[str, str] = {
    "model": "model_name",
    "feature": "feature",
    "user": "user__username",
    "error_class": "error_class",
}


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY expr)``."""

    function = "PERCENTILE_CONT"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("a percentile fraction lies in [0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


@dataclass
class Scope:
    """Which ledger rows a page looks at."""

    team: Team | None  # None: every team (site admins only)
    period: str = "24h"
    bucket: str = "hour"
    model: str = ""
    feature: str = ""
    until: datetime = field(default_factory=timezone.now)

    @property
    def since(self) -> datetime:
        return self.until - PERIODS.get(self.period, PERIODS["24h"])


def scope_team(user: AnyUser, slug: str, default: Team | None) -> Team | None:
    """The team a page shows: ``slug`` if given (404 for outsiders); site admins default to every team."""
    if slug:
        return get_scoped(Team.objects.all(), user, Perm.VIEW, team_path="", slug=slug)
    if is_site_admin(user):
        return None
    if default is None:
        raise Http404("You are not in a team yet.")
    return default


def calls(scope: Scope) -> QuerySet[LLMCall]:
    qs = LLMCall.objects.filter(created_at__gte=scope.since, created_at__lt=scope.until)
    if scope.team is not None:
        qs = qs.filter(team=scope.team)
    if scope.model:
        qs = qs.filter(model_name=scope.model)
    if scope.feature:
        qs = qs.filter(feature=scope.feature)
    return qs


def _metrics() -> dict[str, Any]:
    return {
        "calls": Count("id"),
        "errors": Count("id", filter=Q(outcome="error")),
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
        "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
        "ttft_p50": Percentile("ttft_ms", 0.5),
        "ttft_p95": Percentile("ttft_ms", 0.95),
        "latency_p50": Percentile("total_ms", 0.5),
        "latency_p95": Percentile("total_ms", 0.95),
        "tokens_per_s": Avg("tokens_per_s"),
        "queue_wait_avg": Avg("queue_wait_ms"),
        "queue_wait_p95": Percentile("queue_wait_ms", 0.95),
    }


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    row["tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    row["error_rate"] = row["errors"] / row["calls"] if row["calls"] else 0.0
    row["error_pct"] = 100 * row["error_rate"]
    return row


def summary(scope: Scope) -> dict[str, Any]:
    return _finish(calls(scope).aggregate(**_metrics()))


def breakdown(scope: Scope, by: str) -> list[dict[str, Any]]:
    """Metrics per model / feature / user / error class, plus feedback counts, busiest first."""
    column = BREAKDOWNS[by]
    grouped: Any = calls(scope).annotate(key=Coalesce(F(column), Value("(none)"))).values("key")
    rows: list[dict[str, Any]] = list(grouped.annotate(**_metrics()).order_by("-calls", "key"))
    rated_qs: Any = (
        Feedback.objects.filter(call__in=calls(scope))
        .annotate(key=Coalesce(F(f"call__{column}"), Value("(none)")))
        .values("key")
        .annotate(up=Count("id", filter=Q(rating=1)), down=Count("id", filter=Q(rating=-1)))
    )
    votes: dict[str, dict[str, Any]] = {r["key"]: r for r in rated_qs}
    for row in rows:
        v = votes.get(row["key"], {})
        row["up"], row["down"] = v.get("up", 0), v.get("down", 0)
        rated = row["up"] + row["down"]
        row["approval"] = row["up"] / rated if rated else None
        _finish(row)
    return rows


def timeseries(scope: Scope, *, by_model: bool = False) -> list[dict[str, Any]]:
    """Metrics per hour/day bucket; empty buckets are filled so charts keep a true time axis."""
    trunc = TruncHour if scope.bucket == "hour" else TruncDay
    keys = ["t", "model_name"] if by_model else ["t"]
    rows = list(calls(scope).annotate(t=trunc("created_at")).values(*keys).annotate(**_metrics()).order_by(*keys))
    for row in rows:
        _finish(row)
    return rows


def buckets(scope: Scope) -> list[datetime]:
    step = timedelta(hours=1) if scope.bucket == "hour" else timedelta(days=1)
    start = scope.since.replace(minute=0, second=0, microsecond=0)
    if scope.bucket == "day":
        start = start.replace(hour=0)
    out = []
    t = start
    while t < scope.until:
        out.append(t)
        t += step
    return out[-400:]


def filter_choices(scope: Scope) -> dict[str, list[str]]:
    base = LLMCall.objects.filter(created_at__gte=scope.since)
    if scope.team is not None:
        base = base.filter(team=scope.team)
    return {
        "models": sorted(set(base.values_list("model_name", flat=True).distinct())),
        "features": sorted(set(base.values_list("feature", flat=True).distinct())),
    }


# --- ledger calls and feedback ------------------------------------------------------------


def call_for(user: AnyUser, perm: Perm, **lookup: object) -> LLMCall:
    if "pk" in lookup:
        try:
            uuid.UUID(str(lookup["pk"]))
        except ValueError:
            raise Http404("No LLM call found") from None
    return get_scoped(LLMCall.objects.select_related("team", "user"), user, perm, "team", **lookup)


@dataclass
class FeedbackFilters:
    feature: str = ""
    model: str = ""
    rating: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None


def feedback(user: AnyUser, team: Team | None, f: FeedbackFilters) -> QuerySet[Feedback]:
    qs = scoped(Feedback.objects.all(), user, Perm.VIEW)
    if team is not None:
        qs = qs.filter(team=team)
    if f.feature:
        qs = qs.filter(feature=f.feature)
    if f.model:
        qs = qs.filter(call__model_name=f.model)
    if f.rating is not None:
        qs = qs.filter(rating=f.rating)
    if f.date_from is not None:
        qs = qs.filter(created_at__gte=f.date_from)
    if f.date_to is not None:
        qs = qs.filter(created_at__lt=f.date_to)
    return qs.select_related("user", "team", "call").order_by("-created_at", "-pk")


def feedback_choices(user: AnyUser, team: Team | None) -> dict[str, list[str]]:
    qs = scoped(Feedback.objects.all(), user, Perm.VIEW)
    if team is not None:
        qs = qs.filter(team=team)
    return {
        "features": sorted(set(qs.values_list("feature", flat=True))),
        "models": sorted({m for m in qs.values_list("call__model_name", flat=True) if m}),
    }


# --- findings, recommendations, revisions, settings ------------------------------------------


def finding_for(user: AnyUser, perm: Perm, **lookup: object) -> Finding:
    return get_scoped(Finding.objects.select_related("team"), user, perm, "team", **lookup)


def recommendation_for(user: AnyUser, perm: Perm, **lookup: object) -> Recommendation:
    return get_scoped(
        Recommendation.objects.select_related("finding", "finding__team"),
        user,
        perm,
        team_path="finding__team",
        **lookup,
    )


def revision_for(user: AnyUser, perm: Perm, **lookup: object) -> ConfigRevision:
    return get_scoped(ConfigRevision.objects.all(), user, perm, "team", **lookup)


def findings(user: AnyUser, team: Team | None, status: str = "") -> QuerySet[Finding]:
    qs = scoped(Finding.objects.all(), user, Perm.VIEW)
    qs = qs.filter(team=team) if team is not None else qs
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("team", "recommendation").order_by("status", "p_value", "-last_seen")


def revisions(user: AnyUser, team: Team | None) -> QuerySet[ConfigRevision]:
    qs = scoped(ConfigRevision.objects.all(), user, Perm.VIEW)
    if team is not None:
        qs = qs.filter(Q(team=team) | Q(team__isnull=True)) if is_site_admin(user) else qs.filter(team=team)
    return qs.select_related("created_by", "rolled_back_by", "recommendation")[:100]


def setting_get(key: str, team: Team | None = None, default: object = None) -> object:
    """An advisory setting: the team's value, else the site-wide one, else ``default``."""
    rows = {s.team_id: s.value for s in Setting.objects.filter(key=key).filter(Q(team=team) | Q(team__isnull=True))}
    if team is not None and team.pk in rows:
        return rows[team.pk]
    return rows.get(None, default)


def settings_list(user: AnyUser, team: Team | None) -> QuerySet[Setting]:
    """Advisory settings a user may see: their team's, and (site admins) the site-wide ones."""
    qs = Setting.objects.select_related("team")
    if is_site_admin(user):
        return qs.filter(Q(team=team) | Q(team__isnull=True)) if team is not None else qs
    return qs.filter(team=team) if team is not None else qs.none()


# --- the live panel ---------------------------------------------------------------------------------

WORKERS_CACHE_SECONDS = 5


def workers_up() -> list[str]:
    """Celery workers answering a ping; cached a few seconds so polling pages stay cheap."""
    from django.core.cache import cache

    def ping() -> list[str]:
        from taskmaster.celery import app

        try:
            replies = app.control.ping(timeout=0.5) or []
        except Exception:  # noqa: BLE001 - broker down: shown as "no workers", not as a 500
            return []
        return sorted(name for reply in replies for name in reply)

    cached = cache.get("analytics:workers")
    if cached is None:
        cached = ping()
        cache.set("analytics:workers", cached, WORKERS_CACHE_SECONDS)
    return list(cached)


def waiting_callers() -> int:
    """Callers waiting on a model right now (queued or generating).

    Every caller joins the channel group ``llm.req.<request id>`` before enqueueing and leaves it
    when the call ends; channels_redis keeps each group as the key ``asgi:group:<name>`` and
    deletes it when empty, so counting those keys counts calls in flight.
    """
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return sum(1 for _ in client.scan_iter(match="asgi:group:llm.req.*", count=500))


def now_panel(team: Team | None) -> dict[str, Any]:
    from taskmaster.llm import queueing
    from taskmaster.llm.models import LLMModel

    problems = []
    queues: list[dict[str, Any]] = []
    try:
        for model in LLMModel.objects.filter(enabled=True).order_by("name"):
            queues.append({"model": model.name, "queue": model.queue_name, "depth": queueing.depth(model.queue_name)})
        in_flight = waiting_callers()
    except Exception as exc:  # noqa: BLE001 - Redis down must show as a message on the panel
        problems.append(f"Redis is unreachable ({type(exc).__name__}); queue figures are unknown.")
        in_flight = 0
    queued = sum(q["depth"] for q in queues)
    recent = LLMCall.objects.filter(created_at__gte=timezone.now() - timedelta(minutes=1))
    if team is not None:
        recent = recent.filter(team=team)
    return {
        "queues": queues,
        "queued": queued,
        "active": max(0, in_flight - queued),
        "workers": workers_up(),
        "recent": recent.count(),
        "problems": problems,
        "at": timezone.now(),
    }
