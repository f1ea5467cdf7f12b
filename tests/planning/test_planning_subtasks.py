"""Editing a subtask in place: htmx partials, sibling dependencies, revisions and the optimistic lock."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from planning.models import Revision, Subtask, Task
from planning.services import revision_rollback
from planning.snapshot import tag_graph
from tests.conftest import Trio
from tests.planning.factories import imported, master

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def setup(trio: Trio) -> dict[str, object]:
    tag = master(imported(trio.team))
    task = Task.objects.get(tag=tag, number=2)
    clients = {}
    for name in ("owner", "member", "outsider"):
        c = Client()
        c.force_login(getattr(trio, name))
        clients[name] = c
    return {"tag": tag, "task": task, "sub": task.subtasks.get(number=3), "trio": trio, **clients}


def form(sub: Subtask, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": sub.title,
        "description": sub.description,
        "details": sub.details,
        "test_strategy": sub.test_strategy,
        "status": sub.status,
        "priority": sub.priority,
        "version": sub.version,
        "dependencies": [2],
    }
    return data | changes


def test_edit_form_partial_and_save_records_a_revision(setup: dict) -> None:
    sub: Subtask = setup["sub"]
    url = reverse("planning:subtask_edit", args=[sub.pk])
    r = setup["member"].get(url, **HX)
    html = r.content.decode()
    assert r.status_code == 200 and "<form" in html and "<html" not in html and f"Edit subtask {sub.ref}" in html
    # Its current sibling dependency is ticked; the cross-level one ("1") is not a sibling box.
    assert 'name="dependencies" value="2" checked' in html and 'name="dependencies" value="1">' in html
    assert 'name="dependencies" value="3"' not in html
    assert setup["outsider"].get(url, **HX).status_code == 404

    data = form(sub, title="Seed démo data", details="Use fixtures", test_strategy="Load them", priority="high")
    data["dependencies"] = [1, 2]
    r = setup["member"].post(url, data, **HX)
    html = r.content.decode()
    assert r.status_code == 200 and 'class="subtask"' in html and "Seed démo data" in html and "Saved" in html
    sub.refresh_from_db()
    assert (sub.title, sub.details, sub.test_strategy, sub.priority) == (
        "Seed démo data",
        "Use fixtures",
        "Load them",
        "high",
    )
    assert sub.version == 2
    # Sibling dependencies replaced by the form; the dependency on task 1 is kept.
    assert tag_graph(setup["tag"])["2.3"] == ["1", "2.1", "2.2"]
    revision = Revision.objects.get(tag=setup["tag"], workflow="edit-subtask")
    assert revision.user == setup["trio"].member and "2.3" in revision.summary
    revision_rollback(revision=revision, user=setup["trio"].owner)
    sub.refresh_from_db()
    assert sub.title == "Seed data" and tag_graph(setup["tag"])["2.3"] == ["1", "2.2"]


def test_stale_version_is_a_conflict_that_keeps_my_text(setup: dict) -> None:
    sub: Subtask = setup["sub"]
    url = reverse("planning:subtask_edit", args=[sub.pk])
    stale = form(sub)
    assert setup["owner"].post(url, form(sub, title="Owner's title", dependencies=[])).status_code == 302
    r = setup["member"].post(url, dict(stale, title="Member's title"), **HX)
    html = r.content.decode()
    assert r.status_code == 409 and "changed by someone else" in html
    assert "Member&#x27;s title" in html and "Owner&#x27;s title" in html and "Save mine over theirs" in html
    sub.refresh_from_db()
    assert sub.title == "Owner's title" and sub.version == 2
    assert tag_graph(setup["tag"])["2.3"] == ["1"]
    assert 'name="version" value="2"' in html
    # Saving again from the conflict form (it carries the new version) wins deliberately.
    assert setup["member"].post(url, dict(stale, title="Member's title", version=2)).status_code == 302
    sub.refresh_from_db()
    assert sub.title == "Member's title" and sub.version == 3


def test_cycles_self_and_bad_input_are_rejected_and_change_nothing(setup: dict) -> None:
    sub: Subtask = setup["sub"]
    first = setup["task"].subtasks.get(number=1)
    before = Revision.objects.count()
    # 2.1 depending on 2.3 closes 2.3 → 2.2 → 2.1 → 2.3.
    r = setup["member"].post(
        reverse("planning:subtask_edit", args=[first.pk]), form(first, dependencies=[3], title="X"), **HX
    )
    assert r.status_code == 400 and "cycle" in r.content.decode()
    r = setup["member"].post(reverse("planning:subtask_edit", args=[sub.pk]), form(sub, dependencies=[3]), **HX)
    assert r.status_code == 400 and "depends on itself" in r.content.decode()
    r = setup["member"].post(reverse("planning:subtask_edit", args=[sub.pk]), form(sub, status="bogus"))
    assert r.status_code == 400 and "Unknown status" in r.content.decode() and "<html" in r.content.decode()
    first.refresh_from_db()
    assert first.title == "Model users and teams" and first.version == 1
    assert Revision.objects.count() == before and tag_graph(setup["tag"])["2.1"] == []


def test_cancel_row_and_no_js_paths(setup: dict) -> None:
    sub: Subtask = setup["sub"]
    row = setup["member"].get(reverse("planning:subtask", args=[sub.pk]), **HX).content.decode()
    assert row.startswith('<div class="subtask" id="subtask-') and "Edit subtask 2.3" in row
    assert setup["outsider"].get(reverse("planning:subtask", args=[sub.pk]), **HX).status_code == 404
    page = setup["member"].get(reverse("planning:subtask_edit", args=[sub.pk]))
    assert page.status_code == 200 and "<html" in page.content.decode()
    detail = setup["member"].get(reverse("planning:task", args=[setup["task"].pk])).content.decode()
    assert detail.count('aria-label="Edit subtask 2.') == 3 and "js/planning.js" in detail
