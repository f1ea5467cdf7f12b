"""Upload a document, watch indexing finish, ask, see tokens stream and open a citation."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from research import services
from tests.conftest import Trio, Workers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOC = b"""# Zephyr operations

Zephyr database backups run nightly at 02:00 UTC and are kept for thirty days.
"""


COUNT_TOKENS = """
window.__tokenFrames = 0;
document.addEventListener("htmx:wsAfterMessage", (e) => {
  const m = String(e.detail.message || "");
  if (m.includes('-text" hx-swap-oob="beforeend"')) window.__tokenFrames += 1;
});
"""


def test_upload_index_ask_and_open_a_citation(
    page: Page, live_url: str, trio: Trio, llm: Workers, tmp_path: Path
) -> None:
    kb = services.collection_create(team=trio.team, name="Ops handbook", user=trio.owner)
    doc = tmp_path / "zephyr.md"
    doc.write_bytes(DOC)
    page.add_init_script(COUNT_TOKENS)

    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("pw-owner-123")
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{live_url}/research/collections/{kb.pk}/")
    page.get_by_label("Files").set_input_files(str(doc))
    page.get_by_role("button", name="Upload and index").click()
    job = page.locator(".job").first
    expect(job).to_have_attribute("data-status", "succeeded", timeout=240_000)
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#sources")).to_contain_text("zephyr", timeout=10_000)

    page.goto(live_url + "/research/")
    page.get_by_role("button", name="Start").click()
    page.get_by_label("Question").fill("When do the Zephyr database backups run?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".bubble.user")).to_contain_text("Zephyr database backups")
    final = page.locator(".bubble.assistant.final")
    expect(final).to_be_visible(timeout=180_000)
    assert page.evaluate("window.__tokenFrames") > 0, "no token batch reached the page"
    final.locator("a.source-link").first.click()
    panel = page.locator("#source-panel")
    expect(panel).to_contain_text("02:00 UTC", timeout=10_000)
    expect(panel).to_contain_text("Zephyr operations")
    page.screenshot(path="/tmp/tm-research/research-flow.png", full_page=True)
