"""Bearer-token authentication for every JSON API of the site (``/v1/`` and the planning API).

A token acts as its user, with that user's team permissions. The team of a call is the
``X-Team`` header's team (a slug the user belongs to; 404 otherwise) or, without the
header, the user's first team (the one they created or joined first).

    from taskmaster.api.auth import api_view

    @api_view
    def tasks(request):            # sync or async
        caller = request.api       # ApiCaller(user, token, team)
        ...
        raise ApiError(400, "...") # or Http404 / PermissionDenied: all become OpenAI-style JSON
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from taskmaster.api import limits
from taskmaster.api.errors import ApiError
from taskmaster.api.models import ApiToken
from taskmaster.api.selectors import api_limits_of, api_team, api_token_by_secret
from taskmaster.api.services import api_token_touch
from taskmaster.models import Team

log = logging.getLogger(__name__)


@dataclass
class ApiCaller:
    user: User
    token: ApiToken
    team: Team | None
    limits: limits.Limits

    @property
    def user_id(self) -> int:
        return int(self.user.pk)

    @property
    def team_id(self) -> int | None:
        return self.team.pk if self.team is not None else None


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "Missing API token. Send 'Authorization: Bearer <token>'; create a token on the API tokens page.",
            code="missing_api_key",
        )
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "Malformed Authorization header; expected 'Bearer <token>'.", code="invalid_api_key")
    return value.strip()


def authenticate_bearer(request: HttpRequest, *, count_request: bool = True) -> ApiCaller:
    """The caller behind the request's bearer token, rate-limited; raises ApiError (401/404/429)."""
    secret = _bearer(request)
    token = api_token_by_secret(secret)
    if token is None:
        raise ApiError(401, "Invalid or revoked API token.", code="invalid_api_key")
    user = token.user
    if not user.is_active:
        raise ApiError(401, "The account this token belongs to is deactivated.", code="invalid_api_key")
    slug = request.headers.get("X-Team", "").strip()
    try:
        team = api_team(user, slug or None)
    except Http404:
        raise ApiError(
            404, f"No team {slug!r} among the teams you belong to.", param="X-Team", code="team_not_found"
        ) from None
    caller_limits = api_limits_of(user.pk)
    if count_request:
        limits.hit_rate(user.pk, caller_limits)
    api_token_touch(token=token)
    return ApiCaller(user=user, token=token, team=team, limits=caller_limits)


def _to_response(exc: Exception) -> HttpResponse:
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, Http404):
        return ApiError(404, str(exc) or "Not found.", code="not_found").response()
    if isinstance(exc, PermissionDenied):
        return ApiError(403, str(exc) or "You may not do this.", code="permission_denied").response()
    raise exc


View = Callable[..., Any]


def api_view(view: View) -> View:
    """Authenticate the bearer token, rate-limit, put ``request.api`` and answer errors as JSON."""
    if iscoroutinefunction(view):

        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                request.api = await sync_to_async(authenticate_bearer)(request)  # type: ignore[attr-defined]
                response = await cast(Callable[..., Awaitable[HttpResponseBase]], view)(request, *args, **kwargs)
            except (ApiError, Http404, PermissionDenied) as exc:
                return _to_response(exc)
            return response

        wrapper: View = functools.wraps(view)(async_wrapper)
        markcoroutinefunction(wrapper)
    else:

        def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                request.api = authenticate_bearer(request)  # type: ignore[attr-defined]
                response: HttpResponseBase = view(request, *args, **kwargs)
            except (ApiError, Http404, PermissionDenied) as exc:
                return _to_response(exc)
            return response

        wrapper = functools.wraps(view)(sync_wrapper)
    return csrf_exempt(wrapper)
