"""UAT pages: sessions, scenarios, testers, verdicts with screenshots, live progress, reports."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from analytics.quality import selectors, uat
from analytics.quality.models import UatSession, Verdict
from taskmaster.access import Perm, can
from taskmaster.models import Feedback, Membership


def _date(raw: str, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        raise ValidationError(f"{raw!r} is not a date (YYYY-MM-DD).") from None


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    team = getattr(request, "team", None)
    archived = request.GET.get("archived") == "1"
    return render(
        request,
        "analytics/quality/uat_list.html",
        {
            "team": team,
            "sessions": selectors.uat_sessions_for(request.user, team, archived=archived) if team else [],
            "archived": archived,
            "can_edit": bool(team and can(request.user, team, Perm.EDIT)),
            "today": timezone.localdate(),
        },
    )


@login_required
@require_POST
def session_create(request: HttpRequest) -> HttpResponse:
    team = getattr(request, "team", None)
    if team is None:
        messages.error(request, "Join or switch to a team first.")
        return redirect("analytics:quality:uat_list")
    today = timezone.localdate()
    try:
        session = uat.session_create(
            team=team,
            coordinator=request.user,  # type: ignore[arg-type]
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            starts_on=_date(request.POST.get("starts_on", ""), today),
            ends_on=_date(request.POST.get("ends_on", ""), today),
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        return redirect("analytics:quality:uat_list")
    return redirect("analytics:quality:uat", pk=session.pk)


def _tester_context(request: HttpRequest, session: UatSession) -> list[dict[str, object]]:
    uid = int(request.user.pk or 0)
    mine = {v.scenario_id: v for v in Verdict.objects.filter(scenario__session=session, tester_id=uid)}
    ratings = {
        f.target: f for f in Feedback.objects.filter(user_id=uid, feature="uat", target__startswith="analytics.uat_")
    }
    return [
        {"scenario": s, "verdict": mine.get(s.pk), "rating": ratings.get(uat.rating_target(s))}
        for s in session.scenarios.all()
    ]


@login_required
@require_GET
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    coordinator = uat.can_coordinate(request.user, session)
    tester = uat.is_tester(request.user, session)
    invited = set(session.invitations.values_list("user_id", flat=True))
    members = Membership.objects.filter(team=session.team).select_related("user").order_by("user__username")
    return render(
        request,
        "analytics/quality/uat.html",
        {
            "session": session,
            "coordinator": coordinator,
            "tester": tester,
            "acc": uat.acceptance(session),
            "my_rows": _tester_context(request, session) if tester else [],
            "scenarios": session.scenarios.all(),
            "members": [(m.user, m.user_id in invited) for m in members],
            "outcomes": Verdict.Outcome.choices,
        },
    )


@login_required
@never_cache
@require_GET
def session_progress(request: HttpRequest, pk: int) -> HttpResponse:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    return render(request, "analytics/quality/_uat_progress.html", {"session": session, "acc": uat.acceptance(session)})


def _back(request: HttpRequest, session: UatSession) -> HttpResponse:
    return redirect("analytics:quality:uat", pk=session.pk)


def _error(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))


@login_required
@require_POST
def scenario_add(request: HttpRequest, pk: int) -> HttpResponse:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    try:
        uat.scenario_add(
            session=session,
            user=request.user,  # type: ignore[arg-type]
            title=request.POST.get("title", ""),
            steps=request.POST.get("steps", ""),
            acceptance_criteria=request.POST.get("acceptance_criteria", ""),
            start_path=request.POST.get("start_path", ""),
        )
    except PermissionDenied:
        raise
    except ValidationError as exc:
        _error(request, exc)
    return _back(request, session)


@login_required
@require_POST
def testers_set(request: HttpRequest, pk: int) -> HttpResponse:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    ids = [int(x) for x in request.POST.getlist("testers") if x.isdigit()]
    users = list(get_user_model().objects.filter(pk__in=ids))
    if len(users) != len(set(ids)):
        messages.error(request, "Some of the chosen testers do not exist.")
        return _back(request, session)
    try:
        uat.testers_set(session=session, user=request.user, testers=users)  # type: ignore[arg-type]
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"{len(users)} testers invited.")
    return _back(request, session)


@login_required
@require_POST
def session_status(request: HttpRequest, pk: int) -> HttpResponse:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    try:
        uat.session_set_status(session=session, user=request.user, status=request.POST.get("status", ""))  # type: ignore[arg-type]
    except ValidationError as exc:
        _error(request, exc)
    return _back(request, session)


@login_required
@require_POST
def verdict(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = selectors.scenario_for(request.user, Perm.VIEW, pk=pk)
    try:
        uat.verdict_record(
            scenario=scenario,
            tester=request.user,  # type: ignore[arg-type]
            outcome=request.POST.get("outcome", ""),
            comment=request.POST.get("comment", ""),
            screenshot=request.FILES.get("screenshot"),
        )
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Verdict saved for “{scenario.title}”.")
    return _back(request, scenario.session)


@login_required
@require_POST
def rate(request: HttpRequest, pk: int) -> HttpResponse:
    scenario = selectors.scenario_for(request.user, Perm.VIEW, pk=pk)
    raw = request.POST.get("rating", "")
    try:
        uat.scenario_rate(
            scenario=scenario,
            tester=request.user,  # type: ignore[arg-type]
            rating=int(raw) if raw.lstrip("-").isdigit() else 0,
            comment=request.POST.get("comment", ""),
        )
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, "Thanks: your rating of the AI output was recorded.")
    return _back(request, scenario.session)


def _coordinator_only(request: HttpRequest, pk: int) -> UatSession:
    session = selectors.uat_session_for(request.user, Perm.VIEW, pk=pk)
    if not uat.can_coordinate(request.user, session):
        raise PermissionDenied("Only the coordinator or a team owner exports the report.")
    return session


@login_required
@require_GET
def report_md(request: HttpRequest, pk: int) -> HttpResponse:
    session = _coordinator_only(request, pk)
    response = HttpResponse(uat.report_markdown(session), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="uat-{session.pk}.md"'
    return response


@login_required
@require_GET
def report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    session = _coordinator_only(request, pk)
    response = HttpResponse(uat.report_csv(session), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="uat-{session.pk}.csv"'
    return response


@login_required
@require_GET
def screenshot(request: HttpRequest, pk: int) -> FileResponse:
    v = selectors.verdict_for(request.user, Perm.VIEW, pk=pk)
    if not v.screenshot:
        raise Http404("No screenshot")
    content_type = "image/png" if (v.screenshot.name or "").endswith(".png") else "image/jpeg"
    response = FileResponse(v.screenshot.open("rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response
