"""Analytics pages: dashboards, the live panel, feedback, findings, revisions, routing, /metrics."""

from __future__ import annotations

import csv
import hmac
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from analytics import charts, router, selectors, services
from analytics.forms import DashboardForm, FeedbackFilterForm
from analytics.metrics import REGISTRY
from analytics.models import Recommendation
from analytics.tasks import patterns_job
from taskmaster.access import Perm, can, is_site_admin
from taskmaster.models import LLMModel, Team
from taskmaster.services import job_create


def _team_param(request: HttpRequest) -> Team | None:
    return selectors.scope_team(request.user, request.GET.get("team", "").strip(), getattr(request, "team", None))


def _scope(request: HttpRequest) -> tuple[selectors.Scope, DashboardForm]:
    form = DashboardForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    scope = selectors.Scope(
        team=_team_param(request),
        period=data.get("period") or "24h",
        bucket=data.get("bucket") or ("hour" if (data.get("period") or "24h") in {"1h", "24h"} else "day"),
        model=data.get("model", ""),
        feature=data.get("feature", ""),
    )
    return scope, form


def _no_team(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/no_team.html")


def _pct(v: float | None) -> float | None:
    return None if v is None else 100 * v


@login_required
def index(request: HttpRequest) -> HttpResponse:
    if not is_site_admin(request.user) and getattr(request, "team", None) is None and not request.GET.get("team"):
        return _no_team(request)
    scope, form = _scope(request)
    per_model = selectors.breakdown(scope, "model")
    per_feature = selectors.breakdown(scope, "feature")
    per_user = selectors.breakdown(scope, "user")
    per_error = [r for r in selectors.breakdown(scope, "error_class") if r["errors"]]
    series = {row["t"]: row for row in selectors.timeseries(scope)}
    ticks = selectors.buckets(scope)
    fmt = "%H:%M" if scope.bucket == "hour" else "%b %d"
    labels = [t.strftime(fmt) for t in ticks]
    points = [series.get(t) for t in ticks]

    def line(key: str) -> list[float | None]:
        return [p[key] if p else None for p in points]

    chart_list = [
        charts.line_chart(
            "Calls per " + scope.bucket,
            labels,
            {"calls": [p["calls"] if p else 0 for p in points], "errors": [p["errors"] if p else 0 for p in points]},
        ),
        charts.line_chart("Latency (ms)", labels, {"p50": line("latency_p50"), "p95": line("latency_p95")}, " ms"),
        charts.line_chart(
            "Time to first token (ms)", labels, {"p50": line("ttft_p50"), "p95": line("ttft_p95")}, " ms"
        ),
        charts.bar_chart("p95 latency per model (ms)", [(r["key"], r["latency_p95"]) for r in per_model], " ms"),
        charts.bar_chart(
            "Approval per model (% thumbs up)", [(r["key"], _pct(r["approval"])) for r in per_model], "%", css="s2"
        ),
        charts.bar_chart(
            "Error rate per feature (%)", [(r["key"], _pct(r["error_rate"])) for r in per_feature], "%", css="s3"
        ),
    ]
    context = {
        "form": form,
        "scope": scope,
        "summary": selectors.summary(scope),
        "charts": chart_list,
        "tables": [
            ("model", "Per model", per_model, "Model"),
            ("feature", "Per feature", per_feature, "Feature"),
            ("user", "Per user", per_user, "User"),
            ("error_class", "Errors by class", per_error, "Error class"),
        ],
        "choices": selectors.filter_choices(scope),
        "query": request.GET.urlencode(),
        "teams": Team.objects.order_by("name") if is_site_admin(request.user) else None,
        "routing": router.role_table(),
        "is_admin": is_site_admin(request.user),
        "now_panel": selectors.now_panel(scope.team),
    }
    return render(request, "analytics/index.html", context)


@login_required
@never_cache
def now(request: HttpRequest) -> HttpResponse:
    team = _team_param(request)
    return render(
        request, "analytics/_now.html", {"now_panel": selectors.now_panel(team), "query": request.GET.urlencode()}
    )


def _csv_cell(value: Any) -> Any:
    # Spreadsheets run cells starting with these characters as formulas.
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return "" if value is None else value


def _csv_response(filename: str, header: list[str], rows: list[list[Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return response


METRIC_COLUMNS = [
    "calls",
    "errors",
    "error_rate",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "ttft_p50",
    "ttft_p95",
    "latency_p50",
    "latency_p95",
    "tokens_per_s",
    "queue_wait_avg",
    "queue_wait_p95",
]


@login_required
@require_GET
def export(request: HttpRequest, breakdown: str) -> HttpResponse:
    scope, _ = _scope(request)
    if breakdown == "time":
        rows = selectors.timeseries(scope)
        return _csv_response(
            f"llm-calls-per-{scope.bucket}.csv",
            ["bucket_start", *METRIC_COLUMNS],
            [[r["t"].isoformat(), *(r[c] for c in METRIC_COLUMNS)] for r in rows],
        )
    if breakdown not in selectors.BREAKDOWNS:
        return HttpResponseBadRequest(
            f"Unknown breakdown {breakdown!r}; use model, feature, user, error_class or time."
        )
    data = selectors.breakdown(scope, breakdown)
    columns = [*METRIC_COLUMNS, "up", "down"]
    return _csv_response(
        f"llm-calls-per-{breakdown}.csv", [breakdown, *columns], [[r["key"], *(r[c] for c in columns)] for r in data]
    )


@login_required
def call_detail(request: HttpRequest, pk: str) -> HttpResponse:
    call = selectors.call_for(request.user, Perm.VIEW, pk=pk)
    return render(
        request,
        "analytics/call_detail.html",
        {"call": call, "routing": router.decision_of(call), "feedback": call.feedback.select_related("user")},
    )


def _feedback_rows(qs: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f.pk,
            "created_at": f.created_at.isoformat(),
            "team": f.team.slug,
            "user": f.user.username if f.user else None,
            "feature": f.feature,
            "target": f.target,
            "rating": f.rating,
            "comment": f.comment,
            "call_id": str(f.call_id) if f.call_id else None,
            "model": f.call.model_name if f.call else None,
        }
        for f in qs
    ]


@login_required
@require_GET
def feedback(request: HttpRequest) -> HttpResponse:
    if not is_site_admin(request.user) and getattr(request, "team", None) is None and not request.GET.get("team"):
        return _no_team(request)
    team = _team_param(request)
    form = FeedbackFilterForm(request.GET or None)
    fmt = request.GET.get("format", "")
    if request.GET and not form.is_valid():
        if fmt in {"csv", "json"}:
            return HttpResponseBadRequest(
                "Bad filter: " + "; ".join(str(e) for errs in form.errors.values() for e in errs)
            )
        filters = selectors.FeedbackFilters()
    else:
        data = form.cleaned_data if form.is_bound else {}
        tz = timezone.get_current_timezone()
        start, end = data.get("date_from"), data.get("date_to")
        filters = selectors.FeedbackFilters(
            feature=data.get("feature", ""),
            model=data.get("model", ""),
            rating=data.get("rating"),
            date_from=datetime.combine(start, time.min, tz) if start else None,
            date_to=datetime.combine(end, time.min, tz) + timedelta(days=1) if end else None,
        )
    qs = selectors.feedback(request.user, team, filters)
    if fmt == "json":
        rows = _feedback_rows(qs[:10_000])
        return JsonResponse({"count": len(rows), "feedback": rows}, json_dumps_params={"indent": 1})
    if fmt == "csv":
        rows = _feedback_rows(qs[:10_000])
        header = (
            list(rows[0])
            if rows
            else ["id", "created_at", "team", "user", "feature", "target", "rating", "comment", "call_id", "model"]
        )
        return _csv_response("feedback.csv", header, [list(r.values()) for r in rows])
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("format", None)
    return render(
        request,
        "analytics/feedback.html",
        {
            "form": form,
            "page": page,
            "query": params.urlencode(),
            "choices": selectors.feedback_choices(request.user, team),
            "team": team,
            "teams": Team.objects.order_by("name") if is_site_admin(request.user) else None,
        },
    )


# --- findings and recommendations ---------------------------------------------------------------


@login_required
def findings(request: HttpRequest) -> HttpResponse:
    if not is_site_admin(request.user) and getattr(request, "team", None) is None and not request.GET.get("team"):
        return _no_team(request)
    team = _team_param(request)
    status = request.GET.get("status", "")
    job = None
    job_id = request.GET.get("job", "")
    if job_id.isdigit():
        from taskmaster.selectors import job_for

        job = job_for(request.user, int(job_id))
    return render(
        request,
        "analytics/findings.html",
        {
            "findings": selectors.findings(request.user, team, status),
            "team": team,
            "status": status,
            "job": job,
            "teams": Team.objects.order_by("name") if is_site_admin(request.user) else None,
            "is_admin": is_site_admin(request.user),
            "can_run": is_site_admin(request.user) or (team is not None and can(request.user, team, Perm.EDIT)),
        },
    )


@login_required
@require_POST
def findings_run(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("team", "").strip()
    team = selectors.scope_team(request.user, slug, getattr(request, "team", None))
    if team is None:
        if not is_site_admin(request.user):
            raise PermissionDenied
        job_team = getattr(request, "team", None) or Team.objects.order_by("pk").first()
        if job_team is None:
            messages.error(request, "Create a team first: pattern runs are tracked as a team's job.")
            return redirect("analytics:findings")
    else:
        if not can(request.user, team, Perm.EDIT):
            raise PermissionDenied
        job_team = team
    with transaction.atomic():
        job = job_create(
            team=job_team,
            kind="analytics.patterns",
            created_by=request.user,  # type: ignore[arg-type]
            title=f"Pattern recognition ({team.name if team else 'all teams'})",
            params={"scope": team.slug if team else "all"},
        )
        transaction.on_commit(lambda: patterns_job.delay(job.pk))
    url = reverse("analytics:findings") + f"?job={job.pk}" + (f"&team={team.slug}" if team else "")
    return redirect(url)


def _decide(request: HttpRequest, pk: int) -> Recommendation:
    rec = selectors.recommendation_for(request.user, Perm.VIEW, pk=pk)
    team = rec.finding.team
    allowed = is_site_admin(request.user) or (
        team is not None and can(request.user, team, Perm.MANAGE) and not services.changes_are_global(rec)
    )
    if not allowed:
        raise PermissionDenied("Only a site admin may change site-wide configuration.")
    return rec


def _back(request: HttpRequest, rec: Recommendation) -> HttpResponse:
    team = rec.finding.team
    return redirect(reverse("analytics:findings") + (f"?team={team.slug}" if team else ""))


@login_required
@require_POST
def recommendation_apply(request: HttpRequest, pk: int) -> HttpResponse:
    rec = _decide(request, pk)
    try:
        revision = services.recommendation_apply(recommendation=rec, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Applied “{rec.title}” (revision #{revision.pk}; it can be rolled back).")
    return _back(request, rec)


@login_required
@require_POST
def recommendation_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    rec = _decide(request, pk)
    try:
        services.recommendation_dismiss(recommendation=rec, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Dismissed “{rec.title}”.")
    return _back(request, rec)


@login_required
@require_POST
def recommendation_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    rec = selectors.recommendation_for(request.user, Perm.VIEW, pk=pk)
    if not (is_site_admin(request.user) or (rec.finding.team and can(request.user, rec.finding.team, Perm.EDIT))):
        raise PermissionDenied
    try:
        result = services.recommendation_evaluate(recommendation=rec)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.info(request, f"Did it help? {result['verdict']}.")
    return _back(request, rec)


@login_required
def revisions(request: HttpRequest) -> HttpResponse:
    if not is_site_admin(request.user) and getattr(request, "team", None) is None and not request.GET.get("team"):
        return _no_team(request)
    team = _team_param(request)
    return render(
        request,
        "analytics/revisions.html",
        {
            "revisions": selectors.revisions(request.user, team),
            "team": team,
            "settings": selectors.settings_list(request.user, team),
            "is_admin": is_site_admin(request.user),
        },
    )


@login_required
@require_POST
def revision_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    rev = selectors.revision_for(request.user, Perm.VIEW, pk=pk)
    global_change = any(k.startswith(("role_default:", "setting:*:")) for k in rev.after)
    if not (
        is_site_admin(request.user) or (rev.team and not global_change and can(request.user, rev.team, Perm.MANAGE))
    ):
        raise PermissionDenied
    try:
        services.revision_rollback(revision=rev, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Rolled back: {rev.description}.")
    return redirect("analytics:revisions")


@login_required
@require_POST
def routing_pin(request: HttpRequest) -> HttpResponse:
    if not is_site_admin(request.user):
        raise PermissionDenied("Only a site admin may pin routing.")
    role, name = request.POST.get("role", ""), request.POST.get("model", "")
    model = get_object_or_404(LLMModel, name=name) if name else None
    try:
        services.routing_pin_set(role=role, model=model, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Role {role}: " + (f"pinned to {name}." if name else "adaptive routing."))
    return redirect(reverse("analytics:index") + "#routing")


# --- Prometheus -----------------------------------------------------------------------------------


def _metrics_allowed(request: HttpRequest) -> HttpResponse | None:
    token: str = getattr(settings, "METRICS_TOKEN", "")
    allowed_ips: list[str] = getattr(settings, "METRICS_ALLOWED_IPS", [])
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            return None
        return HttpResponse("Wrong metrics token.\n", status=403, content_type="text/plain")
    if request.META.get("REMOTE_ADDR", "") in allowed_ips:
        return None
    if not token and not allowed_ips:
        return HttpResponse(
            "Metrics are disabled: set METRICS_TOKEN (or METRICS_ALLOWED_IPS).\n", status=403, content_type="text/plain"
        )
    if not token:
        return HttpResponse("This address may not read metrics.\n", status=403, content_type="text/plain")
    response = HttpResponse("Send 'Authorization: Bearer <METRICS_TOKEN>'.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _metrics_allowed(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
