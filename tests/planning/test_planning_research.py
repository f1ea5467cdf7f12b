"""Research mode for Parse PRD: passages from the team's chosen collections go into the prompt, within the context."""

from __future__ import annotations

from typing import Any

from django.test import Client, RequestFactory
from django.urls import reverse

from planning.models import Task
from planning.services import prd_create
from planning.services.ai import Run, prd_prompt, research_context
from planning.views_ai import _params
from research.services import collection_create
from taskmaster.llm.models import LLMCall
from taskmaster.llm.registry import model_for_role
from taskmaster.models import Job, Membership, Role, Team
from tests.conftest import Trio, Workers
from tests.planning.factories import make_project, master
from tests.planning.test_planning_ai import PRD_TEXT, run
from tests.research.helpers import add_texts

NOTE = "Todo items are stored in SQLite with write-ahead logging; a nightly backup copies the SQLite file."


def test_parse_prd_with_research_uses_only_the_project_teams_passages(llm: Workers, editor: Any) -> None:
    team = editor.memberships.first().team
    tag = master(make_project(team))
    notes = collection_create(team=team, name="Storage notes")
    assert add_texts(notes, {"Storage decision": NOTE}).status == Job.Status.SUCCEEDED
    # The editor also belongs to another team; its collection must not leak into this project.
    other = Team.objects.create(name="Beta", slug="beta")
    Membership.objects.create(user=editor, team=other, role=Role.EDITOR)
    foreign = collection_create(team=other, name="Beta secrets")
    assert add_texts(foreign, {"Beta storage": "Todo items of Beta are stored in SQLite on the Beta server."}).status
    prd = prd_create(project=tag.project, title="Todo", text=PRD_TEXT)

    job = run(
        "parse_prd", tag, editor, prd_id=prd.pk, num_tasks=1, mode="append", collection_ids=[notes.pk, foreign.pk]
    )
    assert job.result["research"]["passages"] >= 1 and Task.objects.filter(tag=tag).count() == 1
    call = LLMCall.objects.filter(feature="planning.parse_prd").latest("created_at")
    assert call.input_chars >= len(PRD_TEXT) + len(NOTE)  # the passage really went into the prompt
    assert call.prompt_tokens + call.completion_tokens <= model_for_role("main").context_length

    probe = Run(job=job, tag=tag, params={"collection_ids": [notes.pk, foreign.pk]})
    passages = research_context(probe, "Where are todo items stored?", 2000)
    assert passages and all("Storage decision" in p for p in passages)
    assert not any("Beta" in p for p in passages)
    short = research_context(probe, "Where are todo items stored?", 120)
    assert sum(len(p) for p in short) <= 120
    assert research_context(probe, "Where are todo items stored?", 40) == []
    assert research_context(Run(job=job, tag=tag, params={"collection_ids": [foreign.pk]}), "SQLite", 2000) == []


def test_prompt_layout_and_the_form_refuses_other_teams_collections(trio: Trio) -> None:
    assert prd_prompt("Req", "exactly 2", []).startswith("Requirements:\nReq")
    with_notes = prd_prompt("Req", "exactly 2", ["[Doc] fact one", "[Doc] fact two"])
    assert with_notes.index("fact two") < with_notes.index("Requirements:")

    tag = master(make_project(trio.team))
    prd = prd_create(project=tag.project, title="Todo", text=PRD_TEXT)
    mine = collection_create(team=trio.team, name="Our notes")
    theirs = collection_create(team=Team.objects.create(name="Gamma", slug="gamma"), name="Gamma notes")
    member = Client()
    member.force_login(trio.member)
    page = member.get(reverse("planning:tasks", args=[tag.pk])).content.decode()
    assert "Research mode" in page and "Our notes" in page and "Gamma notes" not in page
    url = reverse("planning:workflow", args=[tag.pk, "parse_prd"])
    r = member.post(url, {"prd": prd.pk, "collections": [theirs.pk]}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "collections of this project" in r.content.decode()
    assert not Job.objects.filter(kind="planning.parse_prd").exists()
    # The accepted choice, as the view passes it to the job (no model is registered in this test).
    request = RequestFactory().post(url, {"prd": prd.pk, "num_tasks": 1, "collections": [mine.pk]})
    request.user = trio.member
    assert _params(request, tag, "planning.parse_prd")["collection_ids"] == [mine.pk]
