"""Object-level authorization for every route, generated from the URL configuration.

Every named URL (and every WebSocket route) must have an entry in ``RULES`` / ``WS_RULES``: a
route added without one fails ``test_every_route_is_in_the_matrix``, so nothing slips through.
Each entry says how to build its arguments from objects owned by the team, who may read it and
who may write through it. The matrix then checks the five callers: the team's owner, an editor,
a viewer, an outsider (owner of another team) and an anonymous visitor.

* GET: allowed callers get a page (never 403/404/5xx); others get 404/403, a sign-in redirect
  (anonymous) or 401 (bearer APIs).
* POST/PATCH/DELETE from a caller without the write permission is refused and changes nothing
  (PostgreSQL's per-transaction write counters must not move). Allowed writes are not sent: the feature
  tests cover them, and several would start model calls.

The Django admin is staff-only: every admin URL sends anonymous and non-staff team owners to
the admin sign-in. No model is called anywhere in this module.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from analytics.models import ConfigRevision, Finding, Recommendation
from analytics.quality import services as quality
from analytics.quality.models import EvalRun, Scenario, UatSession, UatTester, Verdict
from planning.models import Revision, Subtask, Tag, Task
from planning.services import project_create, task_create
from recovery.models import Incident, RegistryRevision
from research.models import Citation, Collection, Document, Message, Source, Thread
from taskmaster.api.services import api_token_create
from taskmaster.llm.models import LLMCall, LLMModel
from taskmaster.models import Invitation, Job, Membership, Role, Team
from taskmaster.routing import websocket_urlpatterns
from tests.conftest import Trio

User = get_user_model()
ROLES = ("owner", "editor", "viewer", "outsider", "anonymous")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)

# Who may do something. "author" is the user who created the object (threads, tokens): the
# team owner here. "tester" is a UAT tester invited to the session: the editor here.
ALLOWED: dict[str, set[str]] = {
    "public": set(ROLES),
    "user": {"owner", "editor", "viewer", "outsider"},
    "view": {"owner", "editor", "viewer"},
    "edit": {"owner", "editor"},
    "manage": {"owner"},
    "author": {"owner"},
    "tester": {"editor"},
    "staff": set(),
}


# --- the world: one object of every kind, owned by the team ----------------------------------


@dataclass
class World:
    trio: Trio
    viewer: Any
    objects: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.objects[name]
        except KeyError:
            raise AttributeError(name) from None


def build_world(trio: Trio) -> World:
    team, owner, editor = trio.team, trio.owner, trio.member
    viewer = User.objects.create_user("viewer", "viewer@example.com", "pw-viewer-123")
    Membership.objects.create(user=viewer, team=team, role=Role.VIEWER)
    w = World(trio=trio, viewer=viewer)
    o = w.objects
    now = timezone.now()

    o["invitation"] = Invitation.objects.create(team=team, role=Role.EDITOR, created_by=owner)
    o["membership"] = Membership.objects.get(user=editor, team=team)
    o["job"] = Job.objects.create(team=team, kind="planning.expand", title="Expand", created_by=owner)

    collection = o["collection"] = Collection.objects.create(team=team, name="Docs", slug="docs", created_by=owner)
    source = o["source"] = Source.objects.create(
        collection=collection, kind=Source.Kind.TEXT, name="Note", text="Invoices are sent monthly.", created_by=owner
    )
    o["document"] = Document.objects.create(
        source=source, collection=collection, key="note", title="Note", doc_type="txt", sha256="0" * 64
    )
    thread = o["thread"] = Thread.objects.create(team=team, owner=owner, title="Billing", shared=True)
    thread.collections.add(collection)
    message = o["message"] = Message.objects.create(thread=thread, role="assistant", content="Monthly [1].")
    Citation.objects.create(message=message, number=1, chunk_ref=0, document_title="Note", text="Monthly.")

    project = o["project"] = project_create(team=team, name="Invoicing")
    tag = o["tag"] = Tag.objects.get(project=project, name="master")
    task = o["task"] = task_create(tag=tag, title="Send invoices")
    o["task2"] = task_create(tag=tag, title="Collect payments")
    o["subtask"] = Subtask.objects.create(parent=task, title="Render PDF", number=1)
    o["revision"] = Revision.objects.filter(tag=tag).order_by("pk").first() or Revision.objects.create(
        tag=tag, workflow="manual", summary="Created"
    )
    o["planning_job"] = Job.objects.create(team=team, kind="planning.expand", title="Expand task 1", created_by=owner)

    o["call"] = LLMCall.objects.create(feature="research.answer", model_name="matrix-model", team=team, user=owner)
    o["llm_model"] = LLMModel.objects.create(
        name="matrix-model", file_path="/nonexistent/matrix.gguf", enabled=True, available=True
    )
    finding = o["finding"] = Finding.objects.create(
        team=team, kind="failure_rate", subject="research.answer", summary="Fails", p_value=0.01, effect_size=0.5,
        last_seen=now,
    )  # fmt: skip
    o["recommendation"] = Recommendation.objects.create(
        finding=finding, action="raise_tokens", title="Raise max_tokens", rationale="Truncated answers"
    )
    o["config_revision"] = ConfigRevision.objects.create(
        team=team, description="max_tokens 256 -> 512", before={}, after={}, created_by=owner
    )

    suite = o["suite"] = quality.suite_create(team=team, name="Cx", kind="complexity", user=owner)
    o["run"] = EvalRun.objects.create(suite=suite, model_name="matrix-model")
    session = o["uat"] = UatSession.objects.create(
        team=team, name="Pilot", starts_on=now.date(), ends_on=now.date() + dt.timedelta(days=7), coordinator=owner
    )
    UatTester.objects.create(session=session, user=editor)
    scenario = o["scenario"] = Scenario.objects.create(
        session=session, title="Pay", steps="Open", acceptance_criteria="Paid", position=1
    )
    verdict = o["verdict"] = Verdict(scenario=scenario, tester=editor, outcome="pass")
    verdict.screenshot.save("shot.png", ContentFile(PNG), save=False)
    verdict.save()

    o["incident"] = Incident.objects.create(
        team=team, cause="truncated", fingerprint="matrix", first_seen=now, last_seen=now
    )
    o["registry_revision"] = RegistryRevision.objects.create(kind="model", object_key="matrix-model", description="x")

    o["api_token"], _ = api_token_create(user=owner, name="laptop")
    for role, user in (("owner", owner), ("editor", editor), ("viewer", viewer), ("outsider", trio.outsider)):
        _, w.tokens[role] = api_token_create(user=user, name=f"matrix-{role}")
    return w


# --- the table: every named URL --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """``read``/``write``: a key of ALLOWED, or None (GET: the route takes no GET; write: read-only)."""

    args: Callable[[World], dict[str, Any]] = lambda w: {}
    read: str | None = "view"
    write: str | None = "edit"
    api: bool = False  # bearer-token JSON API: 401 instead of a sign-in redirect
    data: Callable[[World], dict[str, Any]] = lambda w: {}  # the POST body: aims the write at the team
    unavailable_ok: bool = False  # health checks answer 503 here (no workers run in this test)
    methods: tuple[str, ...] = ("POST",)  # write methods to try on refusal
    note: str = ""


def pk(name: str, attr: str = "pk", key: str = "pk") -> Callable[[World], dict[str, Any]]:
    return lambda w: {key: getattr(w.objects[name], attr)}


RULES: dict[str, Rule] = {
    # core
    "dashboard": Rule(read="user", write="user", note="POST creates the caller's own team"),
    "signup": Rule(read="public", write="public"),
    "login": Rule(read="public", write="public"),
    "logout": Rule(read=None, write="public"),
    "password_change": Rule(read="user", write="user"),
    "password_change_done": Rule(read="user", write=None),
    "team_create": Rule(read="user", write="user"),
    "team_switch": Rule(read=None, write="user"),
    "team_detail": Rule(lambda w: {"slug": w.trio.team.slug}, read="view", write=None),
    "invitation_create": Rule(lambda w: {"slug": w.trio.team.slug}, read=None, write="manage"),
    "invitation_revoke": Rule(lambda w: {"slug": w.trio.team.slug, "pk": w.invitation.pk}, read=None, write="manage"),
    "membership_update": Rule(lambda w: {"slug": w.trio.team.slug, "pk": w.membership.pk}, read=None, write="manage"),
    # The token is the capability: anyone signed in who holds it may accept.
    "invitation_accept": Rule(pk("invitation", "token", "token"), read="user", write="user"),
    "job_status": Rule(pk("job"), write=None),
    "healthz": Rule(read="public", write=None, unavailable_ok=True),
    "readyz": Rule(read="public", write=None, unavailable_ok=True),
    "metrics": Rule(read="staff", write=None, note="needs METRICS_TOKEN or an allowed address: 403 otherwise"),
    # LLM playground: staff only
    "llm:playground": Rule(read="staff", write="staff"),
    "llm:playground_feedback": Rule(pk("call", key="call_id"), read=None, write="staff"),
    # OpenAI-compatible API (models are site-wide; chat and embeddings would call a model)
    "api:models": Rule(read="user", write=None, api=True),
    "api:model_detail": Rule(lambda w: {"model": w.llm_model.name}, read="user", write=None, api=True),
    "api:chat_completions": Rule(read=None, write="user", api=True),
    "api:embeddings": Rule(read=None, write="user", api=True),
    # API tokens: each user's own
    "tokens:list": Rule(read="user", write="user"),
    "tokens:revoke": Rule(pk("api_token"), read=None, write="author"),
    # research
    "research:index": Rule(read="user", write=None),
    "research:thread_create": Rule(read=None, write="user", note="creates in the caller's current team"),
    "research:thread": Rule(pk("thread")),
    "research:thread_update": Rule(pk("thread"), read=None, write="author"),
    "research:thread_delete": Rule(pk("thread"), read=None, write="author"),
    "research:citation": Rule(lambda w: {"message_id": w.message.pk, "number": 1}, write=None),
    "research:document": Rule(pk("document"), write=None),
    "research:feedback": Rule(lambda w: {"message_id": w.message.pk}, read=None, write="view"),
    "research:collections": Rule(read="user", write="user", note="POST creates a collection in the caller's team"),
    "research:collection": Rule(pk("collection"), write=None),
    "research:collection_sources": Rule(pk("collection"), write=None),
    "research:collection_settings": Rule(pk("collection"), read=None, write="manage"),
    "research:collection_delete": Rule(pk("collection"), read=None, write="manage"),
    "research:source_add": Rule(pk("collection"), read=None),
    "research:collection_reindex": Rule(pk("collection"), read=None),
    "research:source_delete": Rule(pk("source"), read=None),
    "research:search": Rule(read="user", write=None),
    # planning
    "planning:index": Rule(read="user", write="user", note="POST creates a project in the caller's team"),
    "planning:project": Rule(pk("project"), write=None),
    "planning:project_settings": Rule(pk("project"), read=None),
    "planning:tag_create": Rule(pk("project"), read=None),
    "planning:transfer": Rule(pk("project")),
    "planning:export": Rule(pk("project"), write=None),
    "planning:prds": Rule(pk("project")),
    "planning:tasks": Rule(pk("tag", key="tag_id"), write=None),
    "planning:board": Rule(pk("tag", key="tag_id"), write=None),
    "planning:graph": Rule(pk("tag", key="tag_id"), write=None),
    "planning:revisions": Rule(pk("tag", key="tag_id"), write=None),
    "planning:task_create": Rule(pk("tag", key="tag_id"), read=None),
    "planning:dependencies_fix": Rule(pk("tag", key="tag_id"), read=None),
    "planning:tasks_move": Rule(pk("tag", key="tag_id"), read=None),
    "planning:tag_copy": Rule(pk("tag", key="tag_id"), read=None),
    "planning:export_complexity": Rule(pk("tag", key="tag_id"), write=None),
    "planning:workflow": Rule(lambda w: {"tag_id": w.tag.pk, "kind": "expand"}, read=None),
    "planning:job": Rule(lambda w: {"tag_id": w.tag.pk, "pk": w.planning_job.pk}, write=None),
    "planning:revision": Rule(pk("revision"), write=None),
    "planning:revision_rollback": Rule(pk("revision"), read=None),
    "planning:task": Rule(pk("task"), write=None),
    "planning:task_edit": Rule(pk("task"), read=None),
    "planning:task_status": Rule(pk("task"), read=None),
    "planning:task_delete": Rule(pk("task"), read=None),
    "planning:dependency_change": Rule(lambda w: {"pk": w.task.pk, "action": "add"}, read=None),
    "planning:subtask_create": Rule(pk("task"), read=None),
    "planning:task_note_add": Rule(pk("task"), read=None),
    "planning:subtask": Rule(pk("subtask"), write=None),
    "planning:subtask_edit": Rule(pk("subtask"), read="edit"),
    "planning:subtask_status": Rule(pk("subtask"), read=None),
    "planning:subtask_promote": Rule(pk("subtask"), read=None),
    # planning API (/api/v1/): bearer tokens
    "planning_api:projects": Rule(read="user", write="user", api=True, note="POST creates in the caller's team"),
    "planning_api:project": Rule(pk("project"), write=None, api=True),
    "planning_api:tags": Rule(pk("project"), api=True),
    "planning_api:prds": Rule(pk("project"), api=True),
    "planning_api:tasks_file": Rule(pk("project"), api=True),
    "planning_api:tag": Rule(pk("tag", key="tag_id"), write=None, api=True),
    "planning_api:tasks": Rule(pk("tag", key="tag_id"), api=True),
    "planning_api:task": Rule(lambda w: {"tag_id": w.tag.pk, "ref": "1"}, api=True, methods=("PATCH", "DELETE")),
    "planning_api:task_status": Rule(lambda w: {"tag_id": w.tag.pk, "ref": "1"}, read=None, api=True),
    "planning_api:subtasks": Rule(lambda w: {"tag_id": w.tag.pk, "ref": "1"}, read=None, api=True),
    "planning_api:dependencies": Rule(lambda w: {"tag_id": w.tag.pk, "ref": "1"}, read=None, api=True),
    "planning_api:dependency": Rule(
        lambda w: {"tag_id": w.tag.pk, "ref": "1", "dep": "2"}, read=None, api=True, methods=("DELETE",)
    ),
    "planning_api:dependencies_validate": Rule(pk("tag", key="tag_id"), write=None, api=True),
    "planning_api:dependencies_fix": Rule(pk("tag", key="tag_id"), read=None, api=True),
    "planning_api:next": Rule(pk("tag", key="tag_id"), write=None, api=True),
    "planning_api:complexity_report": Rule(pk("tag", key="tag_id"), write=None, api=True),
    "planning_api:revisions": Rule(pk("tag", key="tag_id"), write=None, api=True),
    "planning_api:workflow": Rule(lambda w: {"tag_id": w.tag.pk, "kind": "expand"}, read=None, api=True),
    "planning_api:revision_rollback": Rule(pk("revision"), read=None, api=True),
    "planning_api:job": Rule(pk("planning_job"), write=None, api=True),
    # analytics
    "analytics:index": Rule(read="user", write=None),
    "analytics:now": Rule(read="user", write=None),
    "analytics:export": Rule(lambda w: {"breakdown": "feature"}, read="user", write=None),
    "analytics:call_detail": Rule(pk("call"), write=None),
    "analytics:feedback": Rule(read="user", write=None),
    "analytics:findings": Rule(read="user", write=None),
    "analytics:findings_run": Rule(read=None, write="edit", data=lambda w: {"team": w.trio.team.slug}),
    "analytics:recommendation_apply": Rule(pk("recommendation"), read=None, write="manage"),
    "analytics:recommendation_dismiss": Rule(pk("recommendation"), read=None, write="manage"),
    "analytics:recommendation_evaluate": Rule(pk("recommendation"), read=None, write="edit"),
    "analytics:revisions": Rule(read="user", write=None),
    "analytics:revision_rollback": Rule(pk("config_revision"), read=None, write="manage"),
    "analytics:routing_pin": Rule(read=None, write="staff"),
    "analytics:quality:index": Rule(read="user", write=None),
    "analytics:quality:suite_create": Rule(read="user", write="user", note="creates in the caller's team"),
    "analytics:quality:builtin_install": Rule(read=None, write="user", note="installs into the caller's team"),
    "analytics:quality:suite": Rule(pk("suite"), write=None),
    "analytics:quality:suite_import": Rule(pk("suite"), read=None),
    "analytics:quality:suite_collection": Rule(pk("suite"), read=None),
    "analytics:quality:run_create": Rule(pk("suite"), read=None),
    "analytics:quality:run": Rule(pk("run"), write=None),
    "analytics:quality:compare": Rule(read="user", write=None),
    "analytics:quality:uat_list": Rule(read="user", write=None),
    "analytics:quality:uat_create": Rule(read="user", write="user", note="creates in the caller's team"),
    "analytics:quality:uat": Rule(pk("uat"), write=None),
    "analytics:quality:uat_progress": Rule(pk("uat"), write=None),
    "analytics:quality:uat_scenario_add": Rule(pk("uat"), read=None),
    "analytics:quality:uat_testers": Rule(pk("uat"), read=None),
    "analytics:quality:uat_status": Rule(pk("uat"), read=None),
    "analytics:quality:uat_report_md": Rule(pk("uat"), read="author", write=None, note="the coordinator's"),
    "analytics:quality:uat_report_csv": Rule(pk("uat"), read="author", write=None, note="the coordinator's"),
    "analytics:quality:uat_verdict": Rule(pk("scenario"), read=None, write="tester"),
    "analytics:quality:uat_rate": Rule(pk("scenario"), read=None, write="tester"),
    "analytics:quality:uat_screenshot": Rule(pk("verdict"), write=None),
    # recovery
    "recovery:index": Rule(read="user", write=None),
    "recovery:incident": Rule(pk("incident"), write=None),
    "recovery:incident_resolve": Rule(pk("incident"), read=None),
    "recovery:rollbacks": Rule(read="user", write=None),
    "recovery:rollback": Rule(lambda w: {"kind": "planning", "pk": w.revision.pk}, read=None),
    # recovery:rollback for the other kinds is checked in test_rollback_kinds_follow_their_owners.
}


def _named_routes() -> dict[str, str]:
    """``namespace:name`` -> route for every non-admin URL of the project."""

    def walk(resolver: URLResolver, ns: str, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                if p.app_name == "admin":
                    continue
                found |= walk(p, ns + (f"{p.namespace}:" if p.namespace else ""), prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found[ns + (p.name or f"<unnamed {prefix}{p.pattern}>")] = prefix + str(p.pattern)
        return found

    return walk(get_resolver(), "", "/")


def test_every_route_is_in_the_matrix() -> None:
    routes = _named_routes()
    assert sorted(set(routes) - set(RULES)) == [], "add the new routes to RULES in tests/core/test_authz_matrix.py"
    assert sorted(set(RULES) - set(routes)) == [], "RULES names routes that no longer exist"
    ws = {str(p.pattern) for p in websocket_urlpatterns}
    assert ws == set(WS_RULES), "add the new WebSocket routes to WS_RULES"


# --- callers ---------------------------------------------------------------------------------


def _clients(w: World) -> dict[str, Client]:
    users = {"owner": w.trio.owner, "editor": w.trio.member, "viewer": w.viewer, "outsider": w.trio.outsider}
    clients = {"anonymous": Client()}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    return clients


def _api_headers(w: World, role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"HTTP_AUTHORIZATION": f"Bearer {w.tokens[role]}"}


# Tables written on every request, whoever sends it: sessions, and a bearer token's last use.
VOLATILE = ("django_session", "taskmaster_apitoken")


def writes_so_far() -> dict[str, int]:
    """Rows inserted, updated or deleted so far in this test's transaction, per table.

    PostgreSQL counts every write, even one that leaves the same values or is rolled back to a
    savepoint, so equal results before and after a request mean it wrote nothing at all.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables "
            "WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 AND NOT relname = ANY(%s)",
            [list(VOLATILE)],
        )
        return dict(cursor.fetchall())


def test_the_write_counter_sees_writes_and_ignores_reads(world: World) -> None:
    """The refusal checks rely on it: a plain read leaves it still, any write moves it."""
    before = writes_so_far()
    assert Task.objects.filter(tag=world.tag).count() == 2
    assert writes_so_far() == before
    Task.objects.filter(pk=world.task.pk).update(title=world.task.title)  # same value: still a write
    after = writes_so_far()
    assert after["planning_task"] == before.get("planning_task", 0) + 1


def _refused(role: str, rule: Rule, level: str | None, status: int, location: str, *, write: bool) -> bool:
    """Whether a response is a refusal for ``role`` on a route guarded at ``level``."""
    codes = (403, 404, 405) if write else (403, 404)
    if role == "anonymous":
        if rule.api:
            return status == 401
        return (status == 302 and "/login/" in location) or status in codes
    if level == "staff":
        return status in codes or (status == 302 and "/admin/login/" in location)
    return status in codes


@pytest.fixture
def world(trio: Trio, settings: Any) -> World:
    settings.API_RATE_LIMIT_PER_MINUTE = 0  # hundreds of calls in one test; limits have their own tests
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    return build_world(trio)


def test_get_matrix(world: World) -> None:
    clients = _clients(world)
    problems: list[str] = []
    checked = 0
    for name, rule in RULES.items():
        url = reverse(name, kwargs=rule.args(world))
        for role in ROLES:
            caller = Client() if rule.api else clients[role]
            response = caller.get(url, **(_api_headers(world, role) if rule.api else {}))
            status, location = response.status_code, response.get("Location", "")
            checked += 1
            if status >= 500 and not (rule.unavailable_ok and status == 503):
                problems.append(f"GET {url} as {role}: {status}")
            elif rule.read is None:
                if not (status == 405 or _refused(role, rule, rule.write, status, location, write=False)):
                    problems.append(f"GET {url} as {role}: {status} {location} (POST-only route)")
            elif role in ALLOWED[rule.read]:
                if status in (401, 403, 404) or (status == 302 and "login/" in location):
                    problems.append(f"GET {url} as {role}: {status} {location} (should be allowed)")
            elif not _refused(role, rule, rule.read, status, location, write=False):
                problems.append(f"GET {url} as {role}: {status} {location} (should be refused)")
    assert problems == [], "\n".join(problems)
    assert checked == len(RULES) * len(ROLES)


def test_writes_by_callers_without_permission_change_nothing(world: World) -> None:
    clients = _clients(world)
    problems: list[str] = []
    refused = 0
    for name, rule in RULES.items():
        url = reverse(name, kwargs=rule.args(world))
        allowed = ALLOWED[rule.write] if rule.write else set()
        for role in ROLES:
            if role in allowed:
                continue
            for method in rule.methods:
                before = writes_so_far()
                if rule.api:
                    send = getattr(Client(), method.lower())
                    body = json.dumps(rule.data(world))
                    response = send(url, data=body, content_type="application/json", **_api_headers(world, role))
                else:
                    response = getattr(clients[role], method.lower())(url, rule.data(world))
                status, location = response.status_code, response.get("Location", "")
                if status >= 500:
                    problems.append(f"{method} {url} as {role}: {status}")
                elif rule.write is not None and not _refused(role, rule, rule.write, status, location, write=True):
                    problems.append(f"{method} {url} as {role}: {status} {location} (should be refused)")
                after = writes_so_far()
                if after != before:
                    changed = sorted(t for t in after if after[t] != before.get(t))
                    problems.append(f"{method} {url} as {role}: {status}, wrote to {changed}")
                refused += 1
    assert problems == [], "\n".join(problems)
    assert refused > 3 * len(RULES)


def test_rollback_kinds_follow_their_owners(world: World) -> None:
    """recovery:rollback dispatches by kind; each kind keeps its owning app's rule."""
    clients = _clients(world)
    cases = [
        ("analytics", world.config_revision.pk, {"editor", "viewer", "outsider"}),
        ("registry", world.registry_revision.pk, {"owner", "editor", "viewer", "outsider"}),
        ("nonsense", 1, {"owner", "editor", "viewer", "outsider"}),
    ]
    for kind, obj_pk, refused in cases:
        url = reverse("recovery:rollback", kwargs={"kind": kind, "pk": obj_pk})
        for role in sorted(refused):
            before = writes_so_far()
            assert clients[role].post(url).status_code in (403, 404), (kind, role)
            assert writes_so_far() == before, (kind, role)


def test_outsider_token_cannot_reach_another_teams_plan(world: World) -> None:
    """The planning API by bearer token, including an explicit X-Team the outsider is not in."""
    headers = _api_headers(world, "outsider")
    for name in ("planning_api:project", "planning_api:tag", "planning_api:tasks", "planning_api:next"):
        rule = RULES[name]
        url = reverse(name, kwargs=rule.args(world))
        response = Client().get(url, **headers)
        assert response.status_code == 404, url
        assert "Send invoices" not in response.content.decode()
        spoofed = Client().get(url, HTTP_X_TEAM=world.trio.team.slug, **headers)
        assert spoofed.status_code == 404 and spoofed.json()["error"]["code"] == "team_not_found", url
    listing = Client().get(reverse("planning_api:projects"), **headers).content.decode()
    assert "Invoicing" not in listing
    owner = Client().get(reverse("planning_api:tasks", kwargs={"tag_id": world.tag.pk}), **_api_headers(world, "owner"))
    assert owner.status_code == 200 and "Send invoices" in owner.content.decode()


def test_lists_show_outsiders_nothing_of_the_team(world: World) -> None:
    """Routes without an object id still filter by team: the outsider sees none of its names."""
    clients = _clients(world)
    names = ("Billing", "Invoicing", "Docs", "Pilot")  # thread, project, collection, UAT session
    for route in ("research:index", "research:collections", "planning:index", "analytics:quality:uat_list"):
        owner_page = clients["owner"].get(reverse(route)).content.decode()
        outsider_page = clients["outsider"].get(reverse(route)).content.decode()
        shown = [n for n in names if n in owner_page]
        assert shown, route
        assert [n for n in shown if n in outsider_page] == [], route


# --- the admin ---------------------------------------------------------------------------------


def _admin_urls() -> list[str]:
    admin_resolver = next(
        p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.app_name == "admin"
    )
    urls: list[str] = []

    def walk(resolver: URLResolver, prefix: str) -> None:
        for p in resolver.url_patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p, route)
            else:
                # Any object id will do: the check happens before the object is looked up.
                filled = route.replace("<path:object_id>", "1").replace("<id>", "1").replace("^", "").replace("$", "")
                for token in ("<int:content_type_id>", "<path:object_id>", "<int:user_id>", "<str:app_label>"):
                    filled = filled.replace(token, "1")
                if "<" not in filled and "(?P" not in filled:
                    urls.append("/" + filled)

    walk(admin_resolver, str(admin_resolver.pattern))
    return urls


def test_admin_is_staff_only(world: World) -> None:
    urls = _admin_urls()
    assert len(urls) > 50
    clients = _clients(world)
    problems = []
    before = writes_so_far()
    for url in urls:
        if url.startswith(("/admin/login/", "/admin/logout/", "/admin/r/", "/admin/jsi18n/")):
            continue
        # The team owner is not staff: the admin treats them like a stranger.
        for role in ("anonymous", "owner"):
            for method in ("get", "post"):
                response = getattr(clients[role], method)(url)
                location = response.get("Location", "")
                if not (response.status_code == 302 and location.startswith("/admin/login/")):
                    problems.append(f"{method.upper()} {url} as {role}: {response.status_code} {location}")
    assert writes_so_far() == before
    assert problems == [], "\n".join(problems)


# --- WebSocket routes --------------------------------------------------------------------------


@dataclass(frozen=True)
class WsRule:
    path: Callable[[World], str]
    allowed: str


WS_RULES: dict[str, WsRule] = {
    "ws/llm/playground/": WsRule(lambda w: "/ws/llm/playground/", "staff"),
    "ws/research/<int:thread_id>/": WsRule(lambda w: f"/ws/research/{w.thread.pk}/", "view"),
}


async def _connect(path: str, user: Any) -> tuple[bool, WebsocketCommunicator]:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    return connected, communicator


@pytest.mark.django_db(transaction=True)
async def test_websocket_routes_admit_only_the_team(trio: Trio, settings: Any) -> None:
    w = await sync_to_async(build_world)(trio)
    users = {
        "owner": trio.owner,
        "editor": trio.member,
        "viewer": w.viewer,
        "outsider": trio.outsider,
        "anonymous": AnonymousUser(),
    }
    results = {}
    for route, rule in WS_RULES.items():
        for role, user in users.items():
            connected, communicator = await _connect(rule.path(w), user)
            results[(route, role)] = connected
            if connected:
                await communicator.disconnect()
    expected = {(route, role): role in ALLOWED[rule.allowed] for route, rule in WS_RULES.items() for role in ROLES}
    assert results == expected

    # A teammate may watch a shared thread but not ask in it: refused before any model call.
    before = await sync_to_async(Message.objects.filter(thread=w.thread).count)()
    connected, communicator = await _connect(WS_RULES["ws/research/<int:thread_id>/"].path(w), w.viewer)
    assert connected
    await communicator.send_to(text_data=json.dumps({"question": "When?", "collections": [w.collection.pk]}))
    frame = await communicator.receive_from(timeout=5)
    assert "Only the thread&#x27;s owner can ask" in frame or "Only the thread's owner can ask" in frame
    await communicator.disconnect()
    assert await sync_to_async(Message.objects.filter(thread=w.thread).count)() == before


def test_world_covers_every_team_scoped_model(world: World) -> None:
    """A new team-owned model gets an object in the world (and so a route check) or fails here."""
    built = {type(obj) for obj in world.objects.values()}
    built |= {Team, Membership, Citation, Tag, Task, Subtask, UatTester}
    exempt = {"Setting", "AnswerCache", "Feedback", "AuditEvent", "AlertChannel"}  # no route takes their id
    missing = sorted(
        m.__name__
        for m in apps.get_models()
        if m._meta.app_label in {"taskmaster", "research", "planning", "analytics", "recovery"}
        and any(f.name == "team" for f in m._meta.concrete_fields)
        and m not in built
        and m.__name__ not in exempt
    )
    assert missing == []


def _session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


@pytest.mark.django_db(transaction=True)
async def test_websockets_authenticate_by_session_and_refuse_foreign_origins(trio: Trio) -> None:
    """Through the real ASGI stack: the session cookie is the identity, and only our own origin may use it."""
    from taskmaster.asgi import application

    w = await sync_to_async(build_world)(trio)
    cookie = await sync_to_async(_session_cookie)(trio.owner)
    path = WS_RULES["ws/research/<int:thread_id>/"].path(w)

    async def connect(origin: bytes, with_cookie: bool) -> bool:
        headers = [(b"origin", origin), (b"host", b"testserver")]
        if with_cookie:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return connected

    assert await connect(b"http://testserver", with_cookie=True)
    assert not await connect(b"http://evil.example", with_cookie=True)  # cross-site WebSocket hijacking
    assert not await connect(b"http://testserver", with_cookie=False)
