"""The user's "API tokens" settings page: create (secret shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from taskmaster.api import limits, services
from taskmaster.api.forms import TokenForm
from taskmaster.api.selectors import api_limits_of, api_token_for, api_tokens_of


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    user_id = request.user.pk
    assert user_id is not None, "login_required lets only signed-in users through"
    user_limits = api_limits_of(user_id)
    return {
        "tokens": api_tokens_of(request.user),
        "form": extra.pop("form", None) or TokenForm(),
        "limits": user_limits,
        "used_today": limits.tokens_used_today(user_id),
        "base_url": request.build_absolute_uri("/v1"),
        **extra,
    }


def _page(request: HttpRequest, status: int = 200, **extra: Any) -> HttpResponse:
    # htmx swaps only the token panel; without JavaScript the whole page is rendered.
    template = "api/_tokens.html" if request.htmx else "api/tokens.html"  # type: ignore[attr-defined]
    return render(request, template, _context(request, **extra), status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, form=form)
    try:
        token, secret = services.api_token_create(user=request.user, name=form.cleaned_data["name"])  # type: ignore[arg-type]
    except ValidationError as exc:
        form.add_error("name", exc)
        return _page(request, status=400, form=form)
    # Rendered, not redirected: the secret must never be stored, not even in a session message.
    return _page(request, status=201, new_token=token, secret=secret)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = api_token_for(request.user, pk=pk)
    services.api_token_revoke(token=token)
    if request.htmx:  # type: ignore[attr-defined]
        return _page(request, revoked=token)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) revoked.")
    return redirect("tokens:list")
