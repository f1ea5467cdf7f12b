"""Core pages: sign-up, dashboard, teams, health."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from taskmaster import services
from taskmaster.access import Perm, can, get_scoped, team_for
from taskmaster.forms import InvitationForm, RoleForm, SignupForm, TeamForm
from taskmaster.health import run_checks
from taskmaster.models import Invitation, Membership
from taskmaster.selectors import open_invitations, team_members


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("invite", "") or request.POST.get("invite", "")
    invitation = Invitation.objects.select_related("team").filter(token=token).first() if token else None
    if token and (invitation is None or not invitation.usable):
        messages.error(request, "This invitation link is invalid or has expired.")
        invitation, token = None, ""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                invitation_token=token,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if user.is_active:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome, {user.username}.")
                return redirect("dashboard")
            messages.info(request, "Account created. An administrator must approve it before you can sign in.")
            return redirect("login")
    return render(request, "registration/signup.html", {"form": form, "invitation": invitation, "token": token})


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "taskmaster/dashboard.html", {"team_form": TeamForm()})


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A team needs a name.")
        return redirect("dashboard")
    team = services.team_create(name=form.cleaned_data["name"], owner=request.user)  # type: ignore[arg-type]
    request.session["team_id"] = team.pk
    messages.success(request, f"Team “{team.name}” created.")
    return redirect("team_detail", slug=team.slug)


@login_required
@require_POST
def team_switch(request: HttpRequest) -> HttpResponse:
    team = team_for(request.user, Perm.VIEW, slug=request.POST.get("team", ""))
    request.session["team_id"] = team.pk
    next_url = request.POST.get("next") or reverse("dashboard")
    if not next_url.startswith("/") or next_url.startswith("//"):
        next_url = reverse("dashboard")
    return redirect(next_url)


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = team_for(request.user, Perm.VIEW, slug=slug)
    manage = can(request.user, team, Perm.MANAGE)
    context = {
        "team": team,
        "members": team_members(team),
        "invitations": open_invitations(team) if manage else [],
        "can_manage": manage,
        "invite_form": InvitationForm(),
        "role_form": RoleForm(),
    }
    return render(request, "taskmaster/team_detail.html", context)


@login_required
@require_POST
def invitation_create(request: HttpRequest, slug: str) -> HttpResponse:
    team = team_for(request.user, Perm.MANAGE, slug=slug)
    form = InvitationForm(request.POST)
    if form.is_valid():
        invitation = services.invitation_create(team=team, role=form.cleaned_data["role"], created_by=request.user)  # type: ignore[arg-type]
        link = request.build_absolute_uri(reverse("signup") + f"?invite={invitation.token}")
        messages.success(request, f"Invitation link (valid 7 days): {link}")
    return redirect("team_detail", slug=team.slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team = team_for(request.user, Perm.MANAGE, slug=slug)
    invitation = get_object_or_404(Invitation, pk=pk, team=team)
    services.invitation_revoke(invitation=invitation, actor=request.user)  # type: ignore[arg-type]
    messages.success(request, "Invitation revoked.")
    return redirect("team_detail", slug=team.slug)


@login_required
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.select_related("team"), token=token)
    if request.method == "POST":
        try:
            membership = services.invitation_accept(invitation=invitation, user=request.user)  # type: ignore[arg-type]
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("dashboard")
        request.session["team_id"] = membership.team_id
        messages.success(request, f"You joined {membership.team.name}.")
        return redirect("dashboard")
    return render(request, "taskmaster/invitation_accept.html", {"invitation": invitation})


@login_required
@require_POST
def membership_update(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    team = team_for(request.user, Perm.MANAGE, slug=slug)
    membership = get_scoped(Membership.objects.all(), request.user, Perm.MANAGE, pk=pk, team=team)
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(membership=membership, actor=request.user)  # type: ignore[arg-type]
            messages.success(request, f"{membership.user} removed from the team.")
        else:
            form = RoleForm(request.POST)
            if form.is_valid():
                services.membership_set_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)  # type: ignore[arg-type]
                messages.success(request, f"{membership.user} is now {form.cleaned_data['role']}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("team_detail", slug=team.slug)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "ok" if not failing else "failing", "checks": checks, "failing": failing}
    return JsonResponse(body, status=200 if not failing else 503)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    # Liveness only: the process answers. It deliberately touches nothing external.
    return JsonResponse({"status": "ok"})


@login_required
def job_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress partial; it polls itself every second until the job is finished."""
    from taskmaster.selectors import job_for

    job = job_for(request.user, pk)
    response = render(request, "taskmaster/_job.html", {"job": job})
    if job.finished:
        response["HX-Trigger"] = "job-finished"
    return response
