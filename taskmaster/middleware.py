from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from taskmaster.selectors import current_team


class CurrentTeamMiddleware:
    """Puts the signed-in user's current team on ``request.team`` (None when they have none)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.team = current_team(request.user, request.session.get("team_id"))  # type: ignore[attr-defined]
        return self.get_response(request)
