"""The planning API (/api/v1/) with bearer tokens: owner, editor, viewer and outsider; task shape,
errors that say what is wrong with nothing half-applied, a revision per write, tasks.json, jobs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from planning.models import Revision, Status, Subtask, Tag, Task
from planning.snapshot import tag_graph
from taskmaster.api.services import api_token_create, user_api_limit_set
from taskmaster.models import Membership, Role
from tests.conftest import Trio, Workers
from tests.planning.factories import FIXTURES, imported, master

API = "/api/v1"
TM_KEYS = {"id", "title", "description", "details", "testStrategy", "status", "priority", "dependencies"}


@dataclass
class Caller:
    """One user's bearer token on the Django test client."""

    client: Client
    secret: str

    def __call__(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **extra: Any) -> Any:
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {self.secret}", **extra}
        if data is not None:
            kwargs |= {"data": data, "content_type": "application/json"}
        return getattr(self.client, method.lower())(f"{API}{path}", **kwargs)


@pytest.fixture
def api(trio: Trio) -> dict[str, Any]:
    viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw-viewer-123")
    Membership.objects.create(user=viewer, team=trio.team, role=Role.VIEWER)
    users = {"owner": trio.owner, "member": trio.member, "viewer": viewer, "outsider": trio.outsider}
    project = imported(trio.team)
    out: dict[str, Any] = {"project": project, "tag": master(project)}
    for name, user in users.items():
        out[name] = Caller(Client(), api_token_create(user=user, name=f"{name} token")[1])
    return out


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def revisions(tag: Tag) -> int:
    return Revision.objects.filter(tag=tag).count()


def test_every_user_gets_what_their_role_allows(api: dict[str, Any]) -> None:
    project, tag = api["project"], api["tag"]
    reads = [
        "/projects",
        f"/projects/{project.pk}",
        f"/projects/{project.pk}/tags",
        f"/tags/{tag.pk}/tasks",
        f"/tags/{tag.pk}/tasks/2",
        f"/tags/{tag.pk}/tasks/2.2",
        f"/tags/{tag.pk}/next",
        f"/tags/{tag.pk}/dependencies/validate",
        f"/projects/{project.pk}/tasks.json",
    ]
    for who in ("owner", "member", "viewer"):
        for path in reads:
            assert api[who]("GET", path).status_code == 200, (who, path)
    assert [p["name"] for p in api["viewer"]("GET", "/projects").json()["projects"]] == ["Invoicing"]
    # The outsider cannot even learn that the project exists, and has no projects of its own.
    assert api["outsider"]("GET", "/projects").json() == {"projects": []}
    for path in reads[1:]:
        response = api["outsider"]("GET", path)
        assert response.status_code == 404, path
        assert error(response)["type"] == "invalid_request_error"
    new_task = {"title": "Write the API docs"}
    forbidden = api["viewer"]("POST", f"/tags/{tag.pk}/tasks", new_task)
    assert forbidden.status_code == 403
    assert "viewer" in error(forbidden)["message"] and error(forbidden)["type"] == "permission_error"
    assert api["viewer"]("POST", f"/tags/{tag.pk}/tasks/3/status", {"status": "done"}).status_code == 403
    assert api["viewer"]("DELETE", f"/tags/{tag.pk}/tasks/3").status_code == 403
    assert api["viewer"]("POST", "/projects", {"name": "Mine"}).status_code == 403
    assert api["outsider"]("POST", f"/tags/{tag.pk}/tasks", new_task).status_code == 404
    assert Task.objects.filter(tag=tag, title="Write the API docs").count() == 0
    assert api["member"]("POST", f"/tags/{tag.pk}/tasks", new_task).status_code == 201
    # No token, or a wrong one: 401 in the same error shape.
    assert Client().get(f"{API}/projects").status_code == 401
    assert error(Client().get(f"{API}/projects", HTTP_AUTHORIZATION="Bearer nope"))["code"] == "invalid_api_key"


def test_tasks_have_task_masters_shape_and_the_list_filters(api: dict[str, Any]) -> None:
    tag, owner = api["tag"], api["owner"]
    body = owner("GET", f"/tags/{tag.pk}/tasks").json()
    assert body["tag"] == "master" and body["count"] == body["total"] == 4
    exported = json.loads((FIXTURES / "tasks.json").read_text())["master"]["tasks"]
    for got, want in zip(body["tasks"], exported, strict=True):
        # The same object as in tasks.json (key order included), plus the version for optimistic locking.
        assert isinstance(got.pop("version"), int) and set(got) >= TM_KEYS
        assert all(isinstance(sub.pop("version"), int) for sub in got.get("subtasks", []))
        assert json.dumps(got) == json.dumps(want)
    task3 = owner("GET", f"/tags/{tag.pk}/tasks/3").json()
    assert task3["dependencies"] == [2, "2.2"]  # subtask refs as strings, as Task Master writes them
    sub = owner("GET", f"/tags/{tag.pk}/tasks/2.3").json()
    assert sub["parentId"] == 2 and sub["dependencies"] == [2, "1"]  # a bare integer is a sibling
    pending = owner("GET", f"/tags/{tag.pk}/tasks?status=pending").json()
    assert pending["count"] >= 1 and all(t["status"] == "pending" for t in pending["tasks"])
    several = owner("GET", f"/tags/{tag.pk}/tasks?status=done,in-progress&withSubtasks=false").json()
    assert {t["status"] for t in several["tasks"]} <= {"done", "in-progress"} and several["count"] >= 2
    assert all("subtasks" not in t for t in several["tasks"])
    assert owner("GET", f"/tags/{tag.pk}/tasks?priority=critical").json()["tasks"][0]["id"] == 2
    bad = owner("GET", f"/tags/{tag.pk}/tasks?status=finished")
    assert bad.status_code == 400 and error(bad)["param"] == "status" and "pending" in error(bad)["message"]
    typo = owner("GET", f"/tags/{tag.pk}/tasks?stauts=done")
    assert typo.status_code == 400 and error(typo)["code"] == "unknown_field" and error(typo)["param"] == "stauts"
    assert owner("GET", f"/tags/{tag.pk}/tasks/9").status_code == 404
    assert error(owner("GET", f"/tags/{tag.pk}/tasks/two"))["param"] == "id"
    nxt = owner("GET", f"/tags/{tag.pk}/next").json()
    assert nxt["task"] is not None and "priority" in nxt["rule"]
    assert nxt["task"]["status"] in {"pending", "in-progress"}


def test_writes_record_a_revision_each_and_status_done_cascades(api: dict[str, Any]) -> None:
    tag, member = api["tag"], api["member"]
    before = revisions(tag)
    created = member(
        "POST",
        f"/tags/{tag.pk}/tasks",
        {
            "title": "Export invoices",
            "testStrategy": "CSV opens in a spreadsheet",
            "priority": "high",
            "dependencies": [3, "2.2"],
        },
    )
    assert created.status_code == 201, created.content
    task = created.json()
    assert task["id"] == 5 and task["dependencies"] == ["2.2", 3] and task["testStrategy"].startswith("CSV")
    assert created["Location"].endswith(f"/tags/{tag.pk}/tasks/5")
    assert revisions(tag) == before + 1
    rev = Revision.objects.get(pk=int(created["X-Planning-Revision"]))
    assert rev.workflow == "api-create-task" and rev.user is not None and rev.user.username == "member"

    sub = member("POST", f"/tags/{tag.pk}/tasks/5/subtasks", {"title": "Pick the columns"}).json()
    sub2 = member("POST", f"/tags/{tag.pk}/tasks/5/subtasks", {"title": "Write the CSV", "dependencies": [1]})
    assert sub["id"] == 1 and sub2.json()["dependencies"] == [1] and sub2.json()["parentId"] == 5

    version = member("GET", f"/tags/{tag.pk}/tasks/5").json()["version"]
    updated = member("PATCH", f"/tags/{tag.pk}/tasks/5", {"details": "Use the csv module.", "version": version})
    assert updated.status_code == 200 and updated.json()["details"] == "Use the csv module."
    assert updated.json()["version"] == version + 1
    stale = member("PATCH", f"/tags/{tag.pk}/tasks/5", {"title": "Someone else's idea", "version": version})
    assert stale.status_code == 409 and error(stale)["code"] == "edit_conflict"
    assert Task.objects.get(tag=tag, number=5).title == "Export invoices"

    done = member("POST", f"/tags/{tag.pk}/tasks/5/status", {"status": "done"})
    assert done.status_code == 200 and done["X-Planning-Status-Changed"] == "5,5.1,5.2"
    assert [s["status"] for s in done.json()["subtasks"]] == ["done", "done"]
    assert revisions(tag) == before + 5

    sub_status = member("PATCH", f"/tags/{tag.pk}/tasks/5.2", {"status": "review", "priority": "low"})
    assert sub_status.status_code == 200 and sub_status.json()["status"] == "review"
    assert sub_status.json()["priority"] == "low" and sub_status.json()["parentId"] == 5
    assert member("DELETE", f"/tags/{tag.pk}/tasks/5.2/dependencies/5.1").json()["dependencies"] == []
    assert member("POST", f"/tags/{tag.pk}/tasks/5.2/dependencies", {"dependsOn": 1}).json()["dependencies"] == [1]
    assert member("DELETE", f"/tags/{tag.pk}/tasks/5.1").status_code == 200
    deleted = member("DELETE", f"/tags/{tag.pk}/tasks/5")
    assert deleted.status_code == 200 and not Task.objects.filter(tag=tag, number=5).exists()
    assert revisions(tag) == before + 10
    # Each write is undoable: rolling back the delete brings task 5 back.
    rolled = member("POST", f"/revisions/{deleted['X-Planning-Revision']}/rollback")
    assert rolled.status_code == 200 and rolled.json()["workflow"] == "rollback"
    assert Task.objects.get(tag=tag, number=5).subtasks.count() == 1
    again = member("POST", f"/revisions/{deleted['X-Planning-Revision']}/rollback")
    assert again.status_code == 409
    listed = member("GET", f"/tags/{tag.pk}/revisions").json()["revisions"]
    assert listed[0]["workflow"] == "rollback" and listed[1]["workflow"] == "delete-task"


def test_bad_requests_say_what_is_wrong_and_change_nothing(api: dict[str, Any]) -> None:
    tag, owner = api["tag"], api["owner"]
    before, graph = revisions(tag), tag_graph(tag)
    malformed = owner("POST", f"/tags/{tag.pk}/tasks", raw=b'{"title": "x",')
    assert malformed.status_code == 400 and error(malformed)["code"] == "invalid_json"
    assert "line 1" in error(malformed)["message"]
    unknown = owner("POST", f"/tags/{tag.pk}/tasks", {"title": "x", "test_strategy": "snake case"})
    assert unknown.status_code == 400 and error(unknown)["param"] == "test_strategy"
    assert error(unknown)["code"] == "unknown_field" and "testStrategy" in error(unknown)["message"]
    status = owner("PATCH", f"/tags/{tag.pk}/tasks/3", {"status": "finished"})
    assert (
        status.status_code == 400 and error(status)["param"] == "status" and "in-progress" in error(status)["message"]
    )
    missing = owner("POST", f"/tags/{tag.pk}/tasks", {"description": "no title"})
    assert error(missing)["code"] == "missing_field" and error(missing)["param"] == "title"
    wrong_type = owner("POST", f"/tags/{tag.pk}/tasks", {"title": 5})
    assert error(wrong_type)["param"] == "title" and error(wrong_type)["code"] == "invalid_value"
    null = owner("PATCH", f"/tags/{tag.pk}/tasks/3", {"description": None})
    assert null.status_code == 400 and error(null)["param"] == "description"
    assert owner("PATCH", f"/tags/{tag.pk}/tasks/3", {}).status_code == 400

    # Task 3 depends on 2: 2 → 3 would be a cycle.
    cycle = owner("POST", f"/tags/{tag.pk}/tasks/2/dependencies", {"dependsOn": 3})
    assert cycle.status_code == 400 and error(cycle)["code"] == "invalid_dependency"
    assert "cycle" in error(cycle)["message"]
    assert owner("POST", f"/tags/{tag.pk}/tasks/2/dependencies", {"dependsOn": 2}).status_code == 400
    # A new task with one bad dependency is not created at all.
    half = owner("POST", f"/tags/{tag.pk}/tasks", {"title": "Half", "dependencies": [1, 42]})
    assert half.status_code == 400 and "42" in error(half)["message"]
    assert not Task.objects.filter(tag=tag, title="Half").exists()
    subs = Subtask.objects.filter(parent__tag=tag).count()
    bad_sub = owner("POST", f"/tags/{tag.pk}/tasks/2/subtasks", {"title": "Half too", "dependencies": [9]})
    assert bad_sub.status_code == 400 and error(bad_sub)["code"] == "invalid_dependency"
    assert Subtask.objects.filter(parent__tag=tag).count() == subs
    blank = owner("POST", f"/tags/{tag.pk}/tasks", {"title": "   "})
    assert blank.status_code == 400 and error(blank)["param"] == "title"
    assert revisions(tag) == before and tag_graph(tag) == graph

    assert owner("PUT", f"/tags/{tag.pk}/tasks/3", {"title": "x"}).status_code == 405
    # Dependencies added and removed through their endpoints.
    added = owner("POST", f"/tags/{tag.pk}/tasks/4/dependencies", {"dependsOn": 1})
    assert added.status_code == 200 and 1 in added.json()["dependencies"]
    removed = owner("DELETE", f"/tags/{tag.pk}/tasks/4/dependencies/1")
    assert removed.status_code == 200 and 1 not in removed.json()["dependencies"]
    assert revisions(tag) == before + 2
    absent = owner("DELETE", f"/tags/{tag.pk}/tasks/4/dependencies/1")
    assert absent.status_code == 400 and error(absent)["code"] == "invalid_dependency"


def test_tasks_json_round_trip_validate_and_fix(api: dict[str, Any], trio: Trio) -> None:
    owner = api["owner"]
    created = owner("POST", "/projects", {"name": "Mobile app"})
    assert created.status_code == 201 and created.json()["team"] == trio.team.slug
    pid = created.json()["id"]
    original = (FIXTURES / "tasks.json").read_bytes()
    imported_ = owner("POST", f"/projects/{pid}/tasks.json", raw=original)
    assert imported_.status_code == 200, imported_.content
    assert {t["name"] for t in imported_.json()["imported"]} == {"master", "feature-auth"}
    assert owner("GET", f"/projects/{pid}/tasks.json").json() == json.loads(original)
    flat = owner("GET", f"/projects/{pid}/tasks.json?tag=feature-auth&format=flat").json()
    assert set(flat) <= {"tasks", "meta"} and len(flat["tasks"]) == 3
    bad = owner("POST", f"/projects/{pid}/tasks.json", raw=b'{"master": {"tasks": [{"id": 1, "title": ""}]}}')
    assert bad.status_code == 400 and "master.tasks[0].title" in error(bad)["message"]
    assert owner("GET", f"/projects/{pid}/tasks.json").json() == json.loads(original)

    # A tasks.json with a cycle and a missing dependency: validate reports, fix removes (one revision).
    broken = {
        "master": {
            "tasks": [
                {"id": 1, "title": "A", "dependencies": [2]},
                {"id": 2, "title": "B", "dependencies": [1, 9]},
            ]
        }
    }
    assert owner("POST", f"/projects/{pid}/tasks.json", raw=json.dumps(broken).encode()).status_code == 200
    tag = Tag.objects.get(project_id=pid, name="master")
    report = owner("GET", f"/tags/{tag.pk}/dependencies/validate").json()
    assert report["valid"] is False and {i["type"] for i in report["issues"]} == {"missing", "circular"}
    assert api["viewer"]("POST", f"/tags/{tag.pk}/dependencies/fix").status_code == 403
    fixed = owner("POST", f"/tags/{tag.pk}/dependencies/fix")
    assert fixed.status_code == 200 and len(fixed.json()["removed"]) == 2
    assert Revision.objects.get(pk=int(fixed["X-Planning-Revision"])).workflow == "fix-dependencies"
    assert owner("GET", f"/tags/{tag.pk}/dependencies/validate").json() == {"valid": True, "issues": []}

    tags = owner("POST", f"/projects/{pid}/tags", {"name": "v2", "copyFrom": "feature-auth"})
    assert tags.status_code == 201 and tags.json()["taskCount"] == 3
    assert error(owner("POST", f"/projects/{pid}/tags", {"name": "v2"}))["message"].count("v2") >= 1


def test_workflow_requests_are_validated_before_a_job_starts(api: dict[str, Any]) -> None:
    tag, owner = api["tag"], api["owner"]
    base = f"/tags/{tag.pk}/workflows"
    assert owner("POST", f"{base}/summarise", {}).status_code == 404
    both = owner("POST", f"{base}/parse-prd", {"prdId": 1, "text": "# PRD"})
    assert both.status_code == 400 and error(both)["param"] == "prdId"
    assert error(owner("POST", f"{base}/parse-prd", {"text": "x", "numTasks": 99}))["param"] == "numTasks"
    assert owner("POST", f"{base}/expand", {"id": 77}).status_code == 404
    assert error(owner("POST", f"{base}/analyze-complexity", {"ids": [1, 88]}))["message"].endswith("88.")
    assert api["viewer"]("POST", f"{base}/expand", {"id": 3}).status_code == 403
    assert not Subtask.objects.filter(parent__tag=tag, parent__number=3).exists()


def test_parse_prd_through_the_api_runs_as_a_job(llm: Workers, trio: Trio) -> None:
    from tests.planning.factories import make_project

    project = make_project(trio.team)
    tag = master(project)
    # Polling the job must not run into the per-minute rate limit.
    user_api_limit_set(user=trio.owner, requests_per_minute=0, daily_token_quota=0)
    owner = Caller(Client(), api_token_create(user=trio.owner, name="agent")[1])
    outsider = Caller(Client(), api_token_create(user=trio.outsider, name="nosy")[1])
    prd = "# Notes app\nUsers write notes and search them."
    started = owner("POST", f"/tags/{tag.pk}/workflows/parse-prd", {"text": prd, "title": "Notes", "numTasks": 1})
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["kind"] == "parse-prd" and job["status"] in {"queued", "running"}
    assert started["Location"] == f"{API}/jobs/{job['id']}"
    assert outsider("GET", f"/jobs/{job['id']}").status_code == 404
    deadline = time.monotonic() + 240
    while job["status"] not in {"succeeded", "failed"} and time.monotonic() < deadline:
        time.sleep(0.5)
        job = owner("GET", f"/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job
    assert job["revision"] is not None and job["result"]["created"] == [1]
    assert Revision.objects.get(pk=job["revision"]).workflow == "parse-prd"
    tasks = owner("GET", f"/tags/{tag.pk}/tasks").json()["tasks"]
    assert len(tasks) == 1 and tasks[0]["id"] == 1 and tasks[0]["title"] and tasks[0]["status"] == Status.PENDING
    assert owner("GET", f"/projects/{project.pk}/prds").json()["prds"][0]["title"] == "Notes"
