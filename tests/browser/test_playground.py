from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.conftest import Workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_playground_streams_tokens_then_renders_markdown(page: Page, live_url: str, llm: Workers) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "a-long-enough-passphrase-9")
    page.goto(live_url + "/login/?next=/llm/playground/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()

    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    page.reload()
    page.get_by_label("Max tokens").fill("64")
    page.get_by_label("Prompt").fill("Tell me about <b>lighthouses</b>.")
    page.get_by_role("button", name="Send").click()

    expect(page.locator(".bubble.user")).to_have_text("Tell me about <b>lighthouses</b>.")
    final = page.locator(".bubble.assistant.final")
    expect(final).to_be_visible(timeout=60_000)
    # Token batches reached the browser as out-of-band appends before the final frame.
    token_frames = [f for f in frames if 'hx-swap-oob="beforeend"' in f and "-text" in f and "bubble" not in f]
    assert len(token_frames) >= 2, frames
    assert frames.index(token_frames[0]) < len(frames) - 1 and "final" in frames[-1]
    expect(final.locator(".meta")).to_contain_text("tokens")
    assert final.inner_text().strip()
    assert page.locator(".bubble.user b").count() == 0  # the prompt was escaped, not rendered
    page.screenshot(path="/tmp/playground.png")
