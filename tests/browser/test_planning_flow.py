"""A team member pastes a PRD, parses it into tasks, expands one and moves it on the board."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from planning.services import project_create
from taskmaster.models import Membership, Role, Team
from tests.conftest import Workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_prd_to_tasks_then_expand_then_board(page: Page, live_url: str, llm: Workers) -> None:
    user = get_user_model().objects.create_user("planner", "p@example.com", "a-long-enough-passphrase-9")
    team = Team.objects.create(name="Planners", slug="planners")
    Membership.objects.create(user=user, team=team, role=Role.EDITOR)
    project_create(team=team, name="Todo")
    page.set_default_timeout(240_000)
    expect.set_options(timeout=240_000)  # the default model on a busy 2-core machine can take minutes

    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("planner")
    page.get_by_label("Password").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_url + "/planning/")
    page.get_by_role("link", name="Todo").click()

    page.get_by_role("link", name="PRDs").click()
    page.get_by_label("Title").fill("Todo app")
    page.get_by_label("Paste the text (Markdown)").fill("# Todo\nUsers add items and tick them off.")
    page.get_by_role("button", name="Save PRD").click()
    expect(page.get_by_text("PRD saved.")).to_be_visible()
    page.get_by_role("link", name="master", exact=True).click()
    expect(page.get_by_role("heading", name="Parse a PRD")).to_be_visible()

    page.get_by_label("Number of tasks (empty: let the model decide)").fill("2")
    page.get_by_role("button", name="Parse PRD").click()
    expect(page.get_by_role("progressbar")).to_be_visible()
    # The job card polls; when the job succeeds the page reloads with the new tasks.
    # The small model sometimes writes two near-identical tasks, which the merge step folds
    # into one; the flow below needs only the first.
    expect(page.locator("#task-table tr[data-task='1']")).to_be_visible()
    expect(page.get_by_text("Review or roll back this change")).to_be_visible()

    page.locator("#task-table tr[data-task='1'] a").click()
    page.get_by_label("How many (empty: from the complexity report, or 3)").fill("2")
    page.get_by_role("button", name="Expand", exact=True).click()
    expect(page.locator(".subtask")).to_have_count(2)

    page.get_by_role("link", name="Board").click()
    page.get_by_role("button", name="Move task 1 to in-progress").click()
    expect(page.locator("section[data-status='in-progress'] article[data-task='1']")).to_be_visible()
    page.reload()
    expect(page.locator("section[data-status='in-progress'] article[data-task='1']")).to_be_visible()
