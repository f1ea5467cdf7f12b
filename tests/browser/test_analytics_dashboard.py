from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from taskmaster.models import LLMCall, Membership, Role, Team

pytestmark = [pytest.mark.browser]


def _seed() -> None:
    admin = get_user_model().objects.create_superuser("chartadmin", "c@example.com", "a-long-enough-passphrase-9")
    team = Team.objects.create(name="Charts", slug="charts")
    Membership.objects.create(user=admin, team=team, role=Role.OWNER)
    now = timezone.now()
    for i in range(12):
        call = LLMCall.objects.create(
            team=team,
            user=admin,
            feature="research.answer" if i % 2 else "planning.expand",
            model_name="smollm2-135m-instruct",
            prompt_tokens=50 + i,
            completion_tokens=20,
            ttft_ms=100.0 + 10 * i,
            total_ms=900.0 + 50 * i,
            tokens_per_s=30.0,
            outcome="error" if i == 3 else "ok",
            error_class="timeout" if i == 3 else "",
        )
        LLMCall.objects.filter(pk=call.pk).update(created_at=now - timedelta(hours=i % 4))


def test_dashboard_renders_its_charts(transactional_db: None, page: Page, live_url: str) -> None:
    _seed()
    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("chartadmin")
    page.get_by_label("Password").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_url + "/analytics/?team=charts")
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    expect(page.locator("figure.chart svg")).to_have_count(6)
    expect(page.get_by_role("img", name="Latency (ms)")).to_be_visible()
    assert page.locator("figure.chart polyline").count() >= 2
    assert page.locator("figure.chart rect.bar").count() >= 2
    expect(page.locator("#now-panel")).to_be_visible()
    expect(page.locator("[data-stat=calls]")).to_have_text("12")
    page.screenshot(path="/tmp/analytics-dashboard.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: nothing but scrollable tables overflows
    wide = page.evaluate(
        "[...document.querySelectorAll('main *')]"
        ".filter(e => e.getBoundingClientRect().right > 392 && !e.closest('.table-wrap'))"
        ".map(e => e.tagName + '.' + e.className).slice(0, 10)"
    )
    assert wide == [], wide
    page.screenshot(path="/tmp/analytics-dashboard-phone.png", full_page=True)
