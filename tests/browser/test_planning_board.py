"""The board: drag a card to another column (native HTML5 drag and drop), and edit a subtask in place."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from planning.models import Revision, Task
from planning.services import project_create, taskmaster_import
from taskmaster.models import Membership, Role, Team
from tests.planning.factories import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Page, live_url: str) -> None:
    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("mover")
    page.get_by_label("Password").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Planning", exact=True)).to_be_visible()


def test_drag_a_card_to_another_column_then_edit_a_subtask(page: Page, live_url: str) -> None:
    user = get_user_model().objects.create_user("mover", "m@example.com", "a-long-enough-passphrase-9")
    team = Team.objects.create(name="Movers", slug="movers")
    Membership.objects.create(user=user, team=team, role=Role.EDITOR)
    project = project_create(team=team, name="Invoicing")
    taskmaster_import(project=project, raw=(FIXTURES / "tasks.json").read_bytes(), user=None)
    tag = project.tags.get(name="master")
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)  # a busy 2-core machine
    sign_in(page, live_url)

    page.goto(f"{live_url}/planning/tags/{tag.pk}/board/")
    card = page.locator("section[data-status='pending'] article[data-task='3']")
    expect(card).to_have_attribute("draggable", "true")
    card.drag_to(page.locator("section[data-status='review']"))
    expect(page.locator("section[data-status='review'] article[data-task='3']")).to_be_visible()
    expect(page.locator("section[data-status='pending'] article[data-task='3']")).to_have_count(0)
    assert Task.objects.get(tag=tag, number=3).status == "review"
    # A drop back onto its own column changes nothing; the buttons still work beside dragging.
    page.locator("section[data-status='review'] article[data-task='3']").drag_to(
        page.locator("section[data-status='review']")
    )
    page.get_by_role("button", name="Move task 3 back to in-progress").click()
    expect(page.locator("section[data-status='in-progress'] article[data-task='3']")).to_be_visible()
    page.reload()
    expect(page.locator("section[data-status='in-progress'] article[data-task='3']")).to_be_visible()

    # Subtask edit in place: open the form, change title and sibling dependencies, save.
    page.goto(f"{live_url}/planning/tasks/{Task.objects.get(tag=tag, number=2).pk}/")
    page.get_by_role("link", name="Edit subtask 2.3").click()
    form = page.locator("form.subtask-edit")
    form.get_by_label("Title").fill("Seed démo data")
    form.get_by_label("2.1 Model users and teams").check()
    form.get_by_role("button", name="Save subtask").click()
    row = page.locator(".subtask[data-ref='2.3']")
    expect(row).to_contain_text("Seed démo data")
    expect(row).to_contain_text("after 1, 2.1, 2.2")
    expect(page.locator("form.subtask-edit")).to_have_count(0)
    assert Revision.objects.filter(tag=tag, workflow="edit-subtask").count() == 1
