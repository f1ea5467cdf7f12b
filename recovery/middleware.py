"""The API's 429 answers (request rate, daily token quota) filed as rate-limited incidents.

The API refuses the request itself (``taskmaster.api.limits``); what recovers is the client,
told by ``Retry-After`` when to try again. The incident records who hit which limit, so an
admin sees a script hammering the API or a quota set too low. A client that keeps hitting
the limit adds at most one piece of evidence per user, limit and minute: filing must not
cost a database write per refused request.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from recovery.models import Cause

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"


@functools.cache
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _caller(request: HttpRequest) -> tuple[int | None, int | None]:
    """(user id, team id) of the refused request: from the authenticated caller, else from its token."""
    caller = getattr(request, "api", None)
    if caller is not None:
        return caller.user_id, caller.team_id
    # A request-rate refusal happens while authenticating, before ``request.api`` is set.
    from taskmaster.api.selectors import api_team, api_token_by_secret

    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    token = api_token_by_secret(secret.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        return None, None
    try:
        team = api_team(token.user, request.headers.get("X-Team", "").strip() or None)
    except Exception:  # noqa: BLE001 - an unknown X-Team still leaves the user known
        team = None
    return token.user_id, team.pk if team is not None else None


def file_refusal(request: HttpRequest, response: HttpResponse) -> None:
    from recovery.services import incident_record

    try:
        error = json.loads(response.content).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code") or "rate_limited")
    user_id, team_id = _caller(request)
    window = int(time.time() // 60)
    key = f"recovery:429:{user_id or request.META.get('REMOTE_ADDR', '-')}:{code}:{window}"
    if not _redis().set(key, "1", nx=True, ex=120):
        return
    retry = response.get("Retry-After", "")
    who = f"user {user_id}" if user_id else "an unauthenticated client"
    message = f"{error.get('message') or 'Too many requests.'} ({who}, {request.path}"
    message += f"; told to retry after {retry} s)" if retry else ")"
    incident_record(cause=Cause.RATE_LIMITED, team_id=team_id, feature="api", message=message, error_class=code)


class RateLimitIncidentMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _refused(self, request: HttpRequest, response: HttpResponse) -> bool:
        return response.status_code == 429 and request.path.startswith(API_PREFIX)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        response: HttpResponse = self.get_response(request)
        if self._refused(request, response):
            self._file(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = await self.get_response(request)
        if self._refused(request, response):
            await sync_to_async(self._file)(request, response)
        return response

    @staticmethod
    def _file(request: HttpRequest, response: HttpResponse) -> None:
        try:
            file_refusal(request, response)
        except Exception:  # the refusal stands whether or not it could be filed
            log.exception("could not file the 429 for %s", request.path)
