"""Cheap fixtures for planning tests that need a team but not the three users' passwords."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from taskmaster.models import Membership, Role, Team


@pytest.fixture
def team(db: None) -> Team:
    return Team.objects.create(name="Alpha", slug="alpha")


@pytest.fixture
def editor(team: Team) -> Any:
    user = get_user_model().objects.create(username="editor")
    Membership.objects.create(user=user, team=team, role=Role.EDITOR)
    return user
