"""The main pages run under the strict Content-Security-Policy without a single violation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import ConsoleMessage, Page, expect

from planning.models import Tag
from planning.services import project_create, task_create
from recovery.models import Incident
from research.models import Collection, Thread
from taskmaster.models import Membership, Role, Team

pytestmark = [pytest.mark.browser]


def _seed() -> dict[str, str]:
    admin = get_user_model().objects.create_superuser("cspadmin", "csp@example.com", "a-long-enough-passphrase-9")
    team = Team.objects.create(name="Strict", slug="strict")
    Membership.objects.create(user=admin, team=team, role=Role.OWNER)
    collection = Collection.objects.create(team=team, name="Docs", slug="docs", created_by=admin)
    thread = Thread.objects.create(team=team, owner=admin, title="Billing")
    thread.collections.add(collection)
    project = project_create(team=team, name="Invoicing")
    tag = Tag.objects.get(project=project, name="master")
    task = task_create(tag=tag, title="Send invoices")
    now = timezone.now()
    incident = Incident.objects.create(team=team, cause="truncated", fingerprint="csp", first_seen=now, last_seen=now)
    return {
        "dashboard": "/",
        "research": "/research/",
        "research thread": f"/research/threads/{thread.pk}/",
        "collection": f"/research/collections/{collection.pk}/",
        "planning": "/planning/",
        "planning board": f"/planning/tags/{tag.pk}/board/",
        "task": f"/planning/tasks/{task.pk}/",
        "analytics": "/analytics/?team=strict",
        "quality": "/analytics/quality/",
        "recovery": "/recovery/",
        "incident": f"/recovery/incidents/{incident.pk}/",
        "playground": "/llm/playground/",
        "team": "/teams/strict/",
        "admin": "/admin/",
    }


def test_main_pages_raise_no_csp_violation(transactional_db: None, page: Page, live_url: str) -> None:
    pages = _seed()
    violations: list[str] = []
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.goto(live_url + "/login/")
    page.get_by_label("Username").fill("cspadmin")
    page.get_by_label("Password").fill("a-long-enough-passphrase-9")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Sign out").or_(page.get_by_role("button", name="Sign out"))).to_be_visible()

    policies = {}
    for name, path in pages.items():
        response = page.goto(live_url + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        policies[name] = response.headers.get("content-security-policy", "")
        # Let htmx boot, open its WebSockets and run its first polls (the admin has no htmx).
        page.wait_for_timeout(400)
        assert page.evaluate("typeof window.htmx") == ("undefined" if name == "admin" else "object"), name

    assert all("script-src 'self';" in p and "'unsafe-eval'" not in p for p in policies.values()), policies
    assert all("style-src 'self';" in p for n, p in policies.items() if n != "admin"), policies
    assert violations == []
    assert errors == []

    # The detector itself works: an inline style added at run time is refused and reported.
    page.goto(live_url + "/")
    page.evaluate("document.body.setAttribute('style', 'background: red')")
    page.wait_for_timeout(300)
    assert len(violations) == 1 and "style-src" in violations[0], violations
