"""Evaluation pages: suites, imports, the built-in suite, runs, comparison and trend."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from analytics import charts
from analytics.quality import runner, selectors, services
from analytics.quality.importers import ImportProblem
from analytics.quality.models import EvalRun, Suite
from taskmaster.access import Perm, can
from taskmaster.models import LLMModel, Team


def _team(request: HttpRequest) -> Team | None:
    return getattr(request, "team", None)


def _metric_rows(kind: str, runs: list[EvalRun]) -> list[dict[str, Any]]:
    rows = []
    for metric in runner.METRICS[kind]:
        rows.append(
            {
                "metric": metric,
                "label": runner.LABELS[metric],
                "lower_is_better": metric in runner.LOWER_IS_BETTER,
                "values": [
                    {
                        "model": (r.scores.get("model") or {}).get(metric),
                        "baseline": (r.scores.get("baseline") or {}).get(metric),
                        "ratio": (r.scores.get("ratio") or {}).get(metric),
                    }
                    for r in runs
                ],
            }
        )
    return rows


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    return render(
        request,
        "analytics/quality/index.html",
        {
            "team": team,
            "suites": selectors.suites_for(request.user, team) if team else [],
            "sessions": selectors.uat_sessions_for(request.user, team)[:10] if team else [],
            "can_edit": bool(team and can(request.user, team, Perm.EDIT)),
            "kinds": Suite.Kind.choices,
        },
    )


@login_required
@require_POST
def suite_create(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    if team is None or not can(request.user, team, Perm.EDIT):
        messages.error(request, "Only editors and owners of the current team may create suites.")
        return redirect("analytics:quality:index")
    try:
        suite = services.suite_create(
            team=team,
            name=request.POST.get("name", ""),
            kind=request.POST.get("kind", ""),
            description=request.POST.get("description", ""),
            user=request.user,  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("analytics:quality:index")
    return redirect("analytics:quality:suite", pk=suite.pk)


@login_required
@require_POST
def builtin_install(request: HttpRequest) -> HttpResponse:
    team = _team(request)
    if team is None or not can(request.user, team, Perm.EDIT):
        messages.error(request, "Only editors and owners of the current team may install the built-in suite.")
        return redirect("analytics:quality:index")
    suites, job = services.builtin_install(team=team, user=request.user)  # type: ignore[arg-type]
    note = " The documentation is being indexed; research runs can start once that job finishes." if job else ""
    messages.success(request, f"Installed {len(suites)} built-in suites.{note}")
    return redirect("analytics:quality:suite", pk=suites[0].pk)


@login_required
@require_GET
def suite_detail(request: HttpRequest, pk: int) -> HttpResponse:
    suite = selectors.suite_for(request.user, Perm.VIEW, pk=pk)
    runs = list(selectors.suite_runs(suite)[:50])
    done = [r for r in reversed(runs) if r.status == EvalRun.Status.SUCCEEDED]
    primary = runner.PRIMARY[suite.kind]
    trend = charts.line_chart(
        f"{runner.LABELS[primary]} across runs",
        [f"#{r.pk}" for r in done],
        {
            "model": [(r.scores.get("model") or {}).get(primary) for r in done],
            "baseline": [(r.scores.get("baseline") or {}).get(primary) for r in done],
        },
    )
    from research.selectors import collections_for

    collection_job = None
    if suite.collection is not None:
        from research.selectors import collection_jobs

        jobs = collection_jobs(suite.collection, limit=1)
        collection_job = jobs[0] if jobs else None
    return render(
        request,
        "analytics/quality/suite.html",
        {
            "suite": suite,
            "items": suite.items.all(),
            "runs": runs,
            "trend": trend,
            "primary": primary,
            "primary_label": runner.LABELS[primary],
            "can_edit": can(request.user, suite.team, Perm.EDIT),
            "models": LLMModel.objects.filter(kind="chat", enabled=True).order_by("name"),
            "collections": collections_for(request.user, Perm.VIEW, team=suite.team),
            "collection_job": collection_job,
        },
    )


@login_required
@require_POST
def suite_import(request: HttpRequest, pk: int) -> HttpResponse:
    suite = selectors.suite_for(request.user, Perm.EDIT, pk=pk)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a .json or .csv file to import.")
        return redirect("analytics:quality:suite", pk=suite.pk)
    try:
        counts = services.suite_import_file(suite=suite, data=upload.read(), name=upload.name or "upload")
    except (ImportProblem, ValidationError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, f"Nothing was imported. {text}")
    else:
        messages.success(request, f"Imported: {counts['created']} new items, {counts['updated']} updated.")
    return redirect("analytics:quality:suite", pk=suite.pk)


@login_required
@require_POST
def suite_collection(request: HttpRequest, pk: int) -> HttpResponse:
    from research.selectors import collection_for

    suite = selectors.suite_for(request.user, Perm.EDIT, pk=pk)
    raw = request.POST.get("collection", "")
    collection = collection_for(request.user, Perm.VIEW, pk=int(raw)) if raw.isdigit() else None
    try:
        services.suite_set_collection(suite=suite, collection=collection)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("analytics:quality:suite", pk=suite.pk)


@login_required
@require_POST
def run_create(request: HttpRequest, pk: int) -> HttpResponse:
    suite = selectors.suite_for(request.user, Perm.EDIT, pk=pk)
    config = {k: request.POST.get(k, "") for k in ("model", "max_tokens", "k", "temperature", "threshold")}
    try:
        run = services.evalrun_create(suite=suite, user=request.user, config=config)  # type: ignore[arg-type]
    except (ValidationError, ValueError) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else f"Invalid setting: {exc}"
        messages.error(request, text)
        return redirect("analytics:quality:suite", pk=suite.pk)
    return redirect("analytics:quality:run", pk=run.pk)


@login_required
@never_cache
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.evalrun_for(request.user, Perm.VIEW, pk=pk)
    return render(
        request,
        "analytics/quality/run.html",
        {
            "run": run,
            "runs": [run],
            "suite": run.suite,
            "rows": _metric_rows(run.suite.kind, [run]),
            "results": run.results.select_related("item"),
            "metrics": runner.METRICS[run.suite.kind],
        },
    )


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    pks = [int(p) for p in request.GET.getlist("runs") if p.isdigit()][:6]
    runs = sorted(selectors.evalruns_for(request.user, pks), key=lambda r: r.pk)
    kinds = {r.suite.kind for r in runs}
    if len(runs) < 2 or len(kinds) != 1:
        messages.error(request, "Pick at least two finished runs of the same suite kind to compare.")
        if runs:
            return redirect("analytics:quality:suite", pk=runs[0].suite_id)
        return redirect("analytics:quality:index")
    kind = kinds.pop()
    primary = runner.PRIMARY[kind]
    chart = charts.bar_chart(
        f"{runner.LABELS[primary]} per run",
        [(r.label, (r.scores.get("model") or {}).get(primary)) for r in runs],
    )
    # Per item, side by side: rows are items, columns the runs' primary scores.
    by_item: dict[int, dict[str, Any]] = {}
    for col, r in enumerate(runs):
        for res in r.results.select_related("item"):
            row = by_item.setdefault(res.item_id, {"item": res.item, "cells": [None] * len(runs)})
            row["cells"][col] = res
    return render(
        request,
        "analytics/quality/compare.html",
        {
            "runs": runs,
            "rows": _metric_rows(kind, runs),
            "chart": chart,
            "items": sorted(by_item.values(), key=lambda r: (r["item"].position, r["item"].pk)),
            "primary": primary,
        },
    )
