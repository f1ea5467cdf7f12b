"""Every planning view with the three users; conflicts, board moves, uploads, notes, rollback."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from planning.models import Revision, Task, TaskNote
from tests.conftest import Trio
from tests.planning.factories import FIXTURES, imported, master


@pytest.fixture
def setup(trio: Trio) -> dict[str, object]:
    project = imported(trio.team)
    tag = master(project)
    task = Task.objects.get(tag=tag, number=2)
    clients = {}
    for name in ("owner", "member", "outsider"):
        c = Client()
        c.force_login(getattr(trio, name))
        clients[name] = c
    return {"project": project, "tag": tag, "task": task, "sub": task.subtasks.get(number=2), **clients}


PAGES = [
    ("planning:tasks", "tag"),
    ("planning:board", "tag"),
    ("planning:graph", "tag"),
    ("planning:revisions", "tag"),
    ("planning:task", "task"),
    ("planning:transfer", "project"),
    ("planning:prds", "project"),
    ("planning:export", "project"),
    ("planning:export_complexity", "tag"),
]


def test_pages_for_owner_member_and_outsider(setup: dict) -> None:
    revision = Revision.objects.filter(tag=setup["tag"]).first()
    for name, obj in [*PAGES, ("planning:revision", "revision")]:
        url = reverse(name, args=[(revision if obj == "revision" else setup[obj]).pk])
        assert setup["owner"].get(url).status_code == 200, url
        assert setup["member"].get(url).status_code == 200, url
        assert setup["outsider"].get(url).status_code == 404, url
    assert setup["outsider"].get(reverse("planning:project", args=[setup["project"].pk])).status_code == 404


def test_index_lists_only_my_teams_projects(setup: dict) -> None:
    assert "Invoicing" in setup["member"].get(reverse("planning:index")).content.decode()
    assert "Invoicing" not in setup["outsider"].get(reverse("planning:index")).content.decode()
    r = setup["member"].post(reverse("planning:index"), {"name": "Website"})
    assert r.status_code == 302


def test_task_page_shows_dependencies_subtasks_and_graph_svg(setup: dict) -> None:
    html = setup["member"].get(reverse("planning:task", args=[setup["task"].pk])).content.decode()
    assert "Model invoices" in html and "Depends on <strong>1</strong>" in html
    svg = setup["member"].get(reverse("planning:graph", args=[setup["tag"].pk])).content.decode()
    drawing = svg[svg.index("<svg") : svg.index("</svg>")]
    assert drawing.count('class="node"') == 4 and "<script" not in drawing and drawing.count('class="edge"') == 4


def test_filters(setup: dict) -> None:
    url = reverse("planning:tasks", args=[setup["tag"].pk])
    html = setup["member"].get(url, {"status": "deferred"}).content.decode()
    assert 'data-task="4"' in html and 'data-task="1"' not in html
    html = setup["member"].get(url, {"priority": "critical"}).content.decode()
    assert 'data-task="2"' in html and 'data-task="3"' not in html
    other = setup["project"].tags.get(name="feature-auth")
    html = setup["member"].get(reverse("planning:tasks", args=[other.pk])).content.decode()
    assert "OAuth login" in html and "Invoice API" not in html


def test_next_task_is_shown(setup: dict) -> None:
    html = setup["member"].get(reverse("planning:tasks", args=[setup["tag"].pk])).content.decode()
    assert "2.2 Model invoices" in html


def test_edit_conflict_keeps_my_text_and_shows_theirs(setup: dict) -> None:
    task = setup["task"]
    url = reverse("planning:task_edit", args=[task.pk])
    form = {
        "title": "Schema v2",
        "description": "",
        "details": "",
        "test_strategy": "",
        "priority": "high",
        "status": "in-progress",
        "version": task.version,
    }
    assert setup["owner"].post(url, form).status_code == 302
    mine = dict(form, title="My competing title")
    r = setup["member"].post(url, mine)  # same, now stale, version
    assert r.status_code == 409
    html = r.content.decode()
    assert "changed by someone else" in html and "My competing title" in html and "Schema v2" in html
    task.refresh_from_db()
    assert task.title == "Schema v2"
    assert setup["outsider"].post(url, form).status_code == 404
    # Saving again from the conflict page (it carries the new version) wins deliberately.
    again = dict(mine, version=task.version)
    assert setup["member"].post(url, again).status_code == 302
    task.refresh_from_db()
    assert task.title == "My competing title"


def test_board_moves_a_task_with_htmx(setup: dict) -> None:
    task = Task.objects.get(tag=setup["tag"], number=3)
    url = reverse("planning:task_status", args=[task.pk])
    r = setup["member"].post(url, {"status": "in-progress", "view": "board"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and 'id="board"' in r.content.decode()
    task.refresh_from_db()
    assert task.status == "in-progress"
    assert setup["outsider"].post(url, {"status": "done"}).status_code == 404
    r = setup["member"].post(url, {"status": "nonsense"})
    task.refresh_from_db()
    assert task.status == "in-progress"


def test_dependency_add_remove_and_cycle_message(setup: dict) -> None:
    task = setup["task"]
    add = reverse("planning:dependency_change", args=[task.pk, "add"])
    r = setup["member"].post(add, {"dependency": "4"}, follow=True)
    assert "cycle" in r.content.decode()
    setup["member"].post(reverse("planning:dependency_change", args=[task.pk, "remove"]), {"dependency": "1"})
    assert not task.dependencies.exists()
    assert setup["outsider"].post(add, {"dependency": "1"}).status_code == 404


def test_note_endpoint_accepts_json_with_citations(setup: dict) -> None:
    url = reverse("planning:task_note_add", args=[setup["task"].pk])
    body = {
        "text": "Use integer cents.",
        "source_ref": "research.message:1",
        "citations": [{"title": "Money", "url": "https://example.com/m", "snippet": "cents"}],
    }
    r = setup["member"].post(url, json.dumps(body), content_type="application/json")
    assert r.status_code == 201
    note = TaskNote.objects.get(pk=r.json()["id"])
    assert note.citations[0]["url"] == "https://example.com/m" and note.author.username == "member"
    bad = dict(body, citations=[{"title": "x", "url": "javascript:alert(1)"}])
    r = setup["member"].post(url, json.dumps(bad), content_type="application/json")
    assert r.status_code == 400 and "citations[0].url" in r.json()["error"]
    assert setup["outsider"].post(url, json.dumps(body), content_type="application/json").status_code == 404


def test_upload_malformed_file_names_the_place(setup: dict) -> None:
    url = reverse("planning:transfer", args=[setup["project"].pk])
    data = json.loads((FIXTURES / "tasks.json").read_text())
    data["master"]["tasks"][3]["dependencies"] = ["x"]
    before = Revision.objects.count()
    f = SimpleUploadedFile("tasks.json", json.dumps(data).encode(), content_type="application/json")
    r = setup["member"].post(url, {"kind": "tasks", "file": f})
    assert r.status_code == 400 and "master.tasks[3].dependencies[0]" in r.content.decode()
    assert Revision.objects.count() == before
    f = SimpleUploadedFile("tasks.json", (FIXTURES / "tasks.json").read_bytes())
    assert setup["outsider"].post(url, {"kind": "tasks", "file": f}).status_code == 404
    export = setup["member"].get(reverse("planning:export", args=[setup["project"].pk]))
    assert json.loads(export.content) == json.loads((FIXTURES / "tasks.json").read_text())


def test_preview_and_rollback_through_the_views(setup: dict) -> None:
    task = setup["task"]
    setup["member"].post(reverse("planning:task_status", args=[task.pk]), {"status": "done"})
    revision = Revision.objects.get(workflow="set-status")
    page = setup["member"].get(reverse("planning:revision", args=[revision.pk])).content.decode()
    assert "2.2" in page and "Roll back" in page
    assert setup["outsider"].post(reverse("planning:revision_rollback", args=[revision.pk])).status_code == 404
    r = setup["member"].post(reverse("planning:revision_rollback", args=[revision.pk]))
    assert r.status_code == 302
    task.refresh_from_db()
    assert task.status == "in-progress" and task.subtasks.get(number=2).status == "pending"


def test_starting_a_workflow_validates_input_and_404s_outsiders(setup: dict) -> None:
    url = reverse("planning:workflow", args=[setup["tag"].pk, "expand"])
    assert setup["outsider"].post(url, {"task_number": 2}).status_code == 404
    r = setup["member"].post(url, {"task_number": 99}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "has no task 99" in r.content.decode()
    r = setup["member"].post(
        reverse("planning:workflow", args=[setup["tag"].pk, "add_task"]), {"prompt": ""}, HTTP_HX_REQUEST="true"
    )
    assert r.status_code == 422 and "Write a prompt" in r.content.decode()


def test_prd_paste_then_the_parse_form_offers_it(setup: dict) -> None:
    url = reverse("planning:prds", args=[setup["project"].pk])
    r = setup["member"].post(url, {"title": "Todo app", "text": "# Todo\nUsers add items."})
    assert r.status_code == 302
    assert setup["outsider"].post(url, {"title": "x", "text": "y"}).status_code == 404
    assert setup["member"].post(url, {"title": "x", "text": " "}).status_code == 400
    prds = setup["member"].get(url).content.decode()
    assert "Todo app" in prds and "#parse" in prds
    html = setup["member"].get(reverse("planning:tasks", args=[setup["tag"].pk])).content.decode()
    assert "Number of tasks (empty: let the model decide)" in html and "Todo app" in html
