"""After an injected failure, the incident page shows the cause, the plan, each step's outcome and the time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from playwright.sync_api import Page, expect
from pydantic import BaseModel, Field

from recovery import faults, plans
from recovery.models import Recovery
from taskmaster.llm import CallContext, generate, set_recovery
from tests.conftest import Trio, Workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class Pair(BaseModel):
    words: list[Annotated[str, Field(max_length=20)]] = Field(min_length=1, max_length=2)


@pytest.fixture
def recovery_on(settings: Any) -> Iterator[None]:
    settings.FAULT_INJECTION = True
    set_recovery(plans.recover)
    yield
    set_recovery(plans.recover)


def _in_thread(fn: Any) -> Any:
    # Playwright keeps an event loop in the test thread; the blocking client must run elsewhere.
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=300)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def test_incident_page_after_an_injected_truncation(
    page: Page, live_url: str, llm: Workers, trio: Trio, recovery_on: None
) -> None:
    ctx = CallContext(feature="browser.recovery", team_id=trio.team.pk, user_id=trio.owner.pk)
    completion = _in_thread(
        lambda: generate(
            [{"role": "user", "content": "Two words."}], schema=Pair, context=ctx, **faults.truncating_kwargs()
        )
    )
    assert completion.parsed is not None
    page.set_default_timeout(60_000)
    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("pw-owner-123")
    page.get_by_role("button", name="Sign in").click()
    page.goto(live_url + "/recovery/")
    expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
    page.get_by_role("link", name="Output truncated").click()
    expect(page.get_by_test_id("cause")).to_have_text("Output truncated")
    plan = page.get_by_test_id("plan")
    expect(plan.get_by_role("listitem")).to_have_text(
        [
            "Raise the token budget",
            "Raise the token budget",
            "Switch to the fallback model",
            "Give up and fail with a clear message",
        ]
    )
    expect(page.get_by_test_id("outcome").first).to_have_text("Recovered")
    expect(page.get_by_role("cell", name="max_tokens 2 → 64")).to_be_visible()
    expect(page.get_by_test_id("recovery-time").first).to_contain_text(" s")
    recovery = Recovery.objects.get(incident__feature="browser.recovery")
    assert recovery.outcome == "recovered" and recovery.seconds is not None
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the page still lays out
    expect(page.get_by_test_id("cause")).to_be_visible()
