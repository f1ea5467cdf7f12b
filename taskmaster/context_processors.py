from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from taskmaster.access import teams_for


def teams(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    return {"my_teams": teams_for(request.user), "current_team": getattr(request, "team", None)}
