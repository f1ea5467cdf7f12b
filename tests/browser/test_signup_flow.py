from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_first_signup_lands_on_dashboard_as_admin(page: Page, live_url: str) -> None:
    page.goto(live_url + "/")
    expect(page).to_have_url(live_url + "/login/?next=/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill("a-long-enough-passphrase-9")
    page.get_by_label("Password (again)").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("you are the site admin")).to_be_visible()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_be_visible()
    page.screenshot(path=str(pytest.importorskip("pathlib").Path("/tmp/dashboard.png")))
