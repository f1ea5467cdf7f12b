from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from taskmaster.selectors import current_team


class CurrentTeamMiddleware:
    """Puts the signed-in user's current team on ``request.team`` (None when they have none)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.team = current_team(request.user, request.session.get("team_id"))  # type: ignore[attr-defined]
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Sends ``settings.CONTENT_SECURITY_POLICY`` on every response that does not set its own.

    Paths under ``settings.CSP_RELAXED_PATHS`` get ``CONTENT_SECURITY_POLICY_RELAXED`` instead: Django's
    admin emits a few inline ``<style>`` blocks and ``style=`` attributes (scripts stay strict there).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy: str = settings.CONTENT_SECURITY_POLICY
        self.relaxed: str = getattr(settings, "CONTENT_SECURITY_POLICY_RELAXED", self.policy)
        self.relaxed_paths: tuple[str, ...] = tuple(getattr(settings, "CSP_RELAXED_PATHS", ()))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            relaxed = self.relaxed_paths and request.path.startswith(self.relaxed_paths)
            response["Content-Security-Policy"] = self.relaxed if relaxed else self.policy
        return response
