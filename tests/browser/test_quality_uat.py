"""A tester passes a scenario in one browser; the coordinator's open page updates by itself."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from analytics.quality.models import Scenario, UatSession, UatTester
from taskmaster.models import Membership, Role, Team

pytestmark = [pytest.mark.browser]
PASSWORD = "a-long-enough-passphrase-9"


def _seed() -> tuple[UatSession, Scenario]:
    users = get_user_model().objects
    coordinator = users.create_user("coord", "c@example.com", PASSWORD)
    tester = users.create_user("tess", "t@example.com", PASSWORD)
    team = Team.objects.create(name="Quality", slug="quality")
    Membership.objects.create(user=coordinator, team=team, role=Role.OWNER)
    Membership.objects.create(user=tester, team=team, role=Role.EDITOR)
    session = UatSession.objects.create(
        team=team, coordinator=coordinator, name="Release check", starts_on=date.today(), ends_on=date.today()
    )
    scenario = Scenario.objects.create(
        session=session,
        position=1,
        title="Ask a research question",
        steps="Open Research.",
        acceptance_criteria="A cited answer.",
    )
    UatTester.objects.create(session=session, user=tester)
    return session, scenario


def _login(page: Page, live_url: str, username: str) -> None:
    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "/login/" not in u)


def test_tester_pass_shows_up_on_the_coordinators_page(
    transactional_db: None, page: Page, browser: Browser, live_url: str
) -> None:
    session, scenario = _seed()
    _login(page, live_url, "coord")
    page.goto(f"{live_url}/analytics/quality/uat/{session.pk}/")
    cell = page.locator(f'[data-cell="{scenario.pk}-tess"]')
    expect(cell).to_have_text("pending")
    expect(page.locator("[data-recorded]")).to_have_text("0 of 1 verdicts in")

    tester_context = browser.new_context()
    try:
        tester = tester_context.new_page()
        _login(tester, live_url, "tess")
        tester.goto(f"{live_url}/analytics/quality/uat/{session.pk}/")
        form = tester.locator(f"#scenario-{scenario.pk}")
        form.get_by_label("Pass").check()
        form.get_by_label("Comment").fill("Answer cited the README.")
        form.get_by_role("button", name="Save verdict").click()
        expect(tester.get_by_text("Verdict saved")).to_be_visible()
    finally:
        tester_context.close()

    # No reload: the progress panel polls every 2 s.
    expect(cell).to_contain_text("Pass", timeout=10_000)
    expect(cell).to_contain_text("Answer cited the README.")
    expect(page.locator("[data-acceptance]")).to_have_text("100 %")
    expect(page.locator("[data-recorded]")).to_have_text("1 of 1 verdicts in")
    page.set_viewport_size({"width": 390, "height": 800})
    page.screenshot(path="/tmp/quality-uat-phone.png", full_page=True)
