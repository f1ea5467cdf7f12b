"""Every AI workflow on the real default model (tiny N), through the Celery task function.

The small model's wording is never asserted: only structure, counts, numbering,
dependency direction and the revision each run leaves behind.
"""

from __future__ import annotations

import json
import time
from typing import Any

from planning.models import ComplexityReport, Revision, Status, Tag, Task
from planning.services import complexity_import, prd_create, revision_rollback, taskmaster_export, taskmaster_import
from planning.services.ai import _duplicate, _list_of, allocate, schemas, split_sections, workflow_start
from planning.snapshot import tag_graph
from planning.tasks import run_workflow
from taskmaster.llm.schema import json_schema, validate
from taskmaster.models import Job
from tests.conftest import Workers
from tests.planning.factories import FIXTURES, add_tasks, imported, make_project, master

PRD_TEXT = "# Todo app\nUsers add todo items and mark them done.\n\n# Storage\nItems are saved in SQLite."


def finish(kind: str, tag: Tag, user: Any, **params: Any) -> Job:
    """Start a workflow as the page does; the real jobs worker picks it up after commit."""
    job = workflow_start(kind=f"planning.{kind}", tag=tag, user=user, params=params)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{kind} did not finish: {job.status} {job.message}")


def run(kind: str, tag: Tag, user: Any, **params: Any) -> Job:
    job = finish(kind, tag, user, **params)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.revision_ref.startswith("planning.revision:")
    return job


def revision_of(job: Job) -> Revision:
    return Revision.objects.get(pk=int(job.revision_ref.split(":")[1]), job=job)


def test_sections_split_and_task_allocation() -> None:
    text = "\n\n".join(f"# Part {i}\n" + "word " * 200 for i in range(5))
    chunks = split_sections(text, 2200)
    assert len(chunks) == 3 and all(len(c) <= 2200 for c in chunks)
    assert "".join(chunks).count("# Part") == 5
    assert allocate(7, [100, 100, 200]) == [2, 2, 3]
    assert allocate(2, [100, 300, 100]) == [0, 2, 0] or sum(allocate(2, [100, 300, 100])) == 2
    assert sum(allocate(10, [5, 1])) == 10


def test_non_ascii_titles_survive_the_schemas_dedup_and_import(team: Any) -> None:
    schema = _list_of(schemas("short").GenTask, "tasks", 1, 2)
    assert "pattern" not in str(json_schema(schema))  # the grammar no longer limits text to ASCII
    # The runtime's path: raw control characters inside strings parse; titles become one line.
    raw = '{"tasks": [{"title": "Café\n menu", "description": "Crème brûlée\u0007 à la carte", "details": "",'
    raw += ' "dependencies": [], "test_strategy": "日本語のテスト", "priority": "high"}]}'
    task = validate(schema, raw).tasks[0]  # type: ignore[attr-defined]
    assert task.title == "Café menu" and task.description == "Crème brûlée  à la carte"
    assert task.test_strategy == "日本語のテスト"
    assert _duplicate("Café menu", "café  MENU") and not _duplicate("Café menu", "Caf menu")
    assert _duplicate("Überprüfung der Daten", "überprüfung der daten")
    project = make_project(team)
    data = {
        "master": {
            "tasks": [
                {
                    "id": 1,
                    "title": "Café menu",
                    "description": "Crème",
                    "status": "pending",
                    "dependencies": [],
                    "priority": "high",
                    "details": "",
                    "testStrategy": "",
                    "subtasks": [
                        {
                            "id": 1,
                            "title": "Ünïcode ✓",
                            "description": "",
                            "status": "pending",
                            "dependencies": [],
                            "details": "",
                            "testStrategy": "",
                        }
                    ],
                }
            ],
            "metadata": {"created": "2026-01-01T00:00:00Z", "description": "x"},
        }
    }
    taskmaster_import(project=project, raw=json.dumps(data, ensure_ascii=False).encode(), user=None)
    out = taskmaster_export(project=project)
    assert out["master"]["tasks"][0]["title"] == "Café menu"
    assert out["master"]["tasks"][0]["subtasks"][0]["title"] == "Ünïcode ✓"


def test_parse_prd_appends_n_tasks_with_backward_dependencies_and_rolls_back(llm: Workers, editor: Any) -> None:
    tag = master(make_project(editor.memberships.first().team))
    add_tasks(tag, "Existing work")
    prd = prd_create(project=tag.project, title="Todo", text=PRD_TEXT)
    job = run("parse_prd", tag, editor, prd_id=prd.pk, num_tasks=2, mode="append")
    tasks = list(Task.objects.filter(tag=tag).order_by("number"))
    assert [t.number for t in tasks] == [1, 2, 3]
    assert tasks[0].title == "Existing work" and all(t.title for t in tasks)
    for ref, deps in tag_graph(tag).items():
        assert all(int(d) < int(ref) and int(d) >= 2 for d in deps), (ref, deps)
    revision = revision_of(job)
    assert revision.workflow == "parse-prd" and revision.user == editor
    assert len(revision.snapshot_after["tasks"]) == 3
    revision_rollback(revision=revision, user=editor)
    assert list(Task.objects.filter(tag=tag).values_list("title", flat=True)) == ["Existing work"]


def test_expand_uses_the_report_count_and_analyze_scores_tasks(llm: Workers, editor: Any) -> None:
    tag = master(imported(editor.memberships.first().team))
    task = Task.objects.get(tag=tag, number=3)
    Task.objects.filter(pk=task.pk).update(title="API für Rechnungen (café)")
    ComplexityReport.objects.create(task=task, score=6, recommended_subtasks=2, expansion_prompt="Split by endpoint.")
    job = run("expand", tag, editor, task_number=3, num_subtasks=None, prompt="", replace=False)
    subs = list(task.subtasks.order_by("number"))
    assert [s.number for s in subs] == [1, 2] and all(s.title for s in subs)
    graph = tag_graph(tag)
    assert all(d == "3.1" for d in graph["3.2"]) and graph["3.1"] == []
    assert "2 subtasks" in job.message
    assert Task.objects.get(pk=task.pk).title == "API für Rechnungen (café)"

    job = run("analyze", tag, editor, task_numbers=[3, 4], threshold=5)
    reports = ComplexityReport.objects.filter(task__tag=tag, task__number__in=[3, 4], model_name__gt="")
    assert reports.count() == 2
    assert all(1 <= r.score <= 10 and r.threshold == 5 and r.model_name for r in reports)
    assert revision_of(job).workflow == "analyze"


def test_expand_all_takes_pending_tasks_above_the_threshold(llm: Workers, editor: Any) -> None:
    tag = master(imported(editor.memberships.first().team))
    complexity_import(tag=tag, raw=(FIXTURES / "task-complexity-report.json").read_bytes(), user=None)
    ComplexityReport.objects.filter(task__number=3).update(recommended_subtasks=1)
    job = run("expand_all", tag, editor, threshold=6, replace=False)
    assert Task.objects.get(tag=tag, number=3).subtasks.count() == 1
    assert Task.objects.get(tag=tag, number=4).subtasks.count() == 0  # deferred, and below the threshold
    assert job.result["tasks"] == [3]


def test_add_update_and_scope(llm: Workers, editor: Any) -> None:
    tag = master(imported(editor.memberships.first().team))
    job = run("add_task", tag, editor, prompt="Add a health check endpoint", priority="high")
    new = Task.objects.get(tag=tag, number=5)
    assert new.title and new.priority == "high" and job.result["task"] == 5
    assert all(int(d) < 5 for d in tag_graph(tag)["5"])

    before = Task.objects.get(tag=tag, number=4)
    run("update", tag, editor, prompt="Use the new mail provider", mode="append", task_numbers=[4], from_number=None)
    after = Task.objects.get(tag=tag, number=4)
    assert after.details.startswith(before.details) and "<info added on " in after.details
    assert after.version == before.version + 1

    run("update", tag, editor, prompt="Use GraphQL instead of REST", mode="rewrite", from_number=4, task_numbers=[])
    assert Revision.objects.filter(tag=tag, workflow="update").count() == 2

    job = run("scope", tag, editor, task_numbers=[3], direction="down", strength="light", prompt="")
    assert revision_of(job).workflow == "scope-down"
    assert Task.objects.get(tag=tag, number=3).status == Status.PENDING


def test_failures_say_what_went_wrong_and_change_nothing(llm: Workers, editor: Any) -> None:
    tag = master(imported(editor.memberships.first().team))
    job = finish("expand_all", tag, editor, threshold=9)
    assert job.status == Job.Status.FAILED and "never analysed" in job.error and "Nothing was changed" in job.error
    prd = prd_create(project=tag.project, title="x", text=PRD_TEXT)
    before = Revision.objects.count()
    job = finish("parse_prd", tag, editor, prd_id=prd.pk, num_tasks=2, mode="replace", max_tokens=8)
    # The recovery app raises the token budget of a truncated call; either it succeeds and the
    # change lands whole as one revision, or the job fails saying why and nothing changed.
    if job.status == Job.Status.FAILED:
        assert "truncated" in job.error
        assert Revision.objects.count() == before and Task.objects.filter(tag=tag).count() == 4
    else:
        assert job.status == Job.Status.SUCCEEDED
        assert Revision.objects.count() == before + 1 and Task.objects.filter(tag=tag).count() == 2
    status, revisions = job.status, Revision.objects.count()
    run_workflow(job.pk)  # a finished job delivered again is left alone
    job.refresh_from_db()
    assert job.status == status and Revision.objects.count() == revisions
