"""tasks.json and complexity report import/export: round trip, malformed files, atomicity."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from planning import tmformat
from planning.models import ComplexityReport, Project, Revision, Tag, Task
from planning.services import (
    complexity_export,
    complexity_import,
    revision_rollback,
    taskmaster_export,
    taskmaster_import,
)
from planning.snapshot import tag_graph
from taskmaster.models import Team
from tests.planning.factories import FIXTURES, imported, make_project, master


def test_import_then_export_gives_back_the_same_file(team: Team) -> None:
    original = json.loads((FIXTURES / "tasks.json").read_text())
    project = imported(team)
    assert taskmaster_export(project=project) == original
    assert tag_graph(master(project))["3"] == ["2", "2.2"]
    assert tag_graph(master(project))["2.3"] == ["1", "2.2"]
    # ... and the exported file imports into a fresh project with the same result.
    again = make_project(team, "Again")
    taskmaster_import(project=again, raw=json.dumps(taskmaster_export(project=project)), user=None)
    assert taskmaster_export(project=again) == original
    task = Task.objects.get(tag__project=again, tag__name="master", number=3)
    assert task.metadata["assignee"] == "dana" and task.metadata["metadata"]["labels"] == ["api", "billing"]


def test_export_json_key_order_matches_the_original(team: Team) -> None:
    original = json.loads((FIXTURES / "tasks.json").read_text())
    exported = taskmaster_export(project=imported(team))
    assert json.dumps(exported, indent=2) == json.dumps(original, indent=2)  # dicts keep insertion order


def test_flat_format_imports_into_master_and_exports_flat(team: Team) -> None:
    project = make_project(team)
    flat = {
        "tasks": [
            {"id": 1, "title": "A", "status": "pending", "dependencies": []},
            {"id": 2, "title": "B", "status": "done", "dependencies": [1]},
        ]
    }
    taskmaster_import(project=project, raw=json.dumps(flat), user=None)
    assert tag_graph(master(project)) == {"1": [], "2": ["1"]}
    assert taskmaster_export(project=project, flat=True) == flat


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"master": {"tasks": [{"id": 1, "title": "x", "dependencies": [True]}]}}, "master.tasks[0].dependencies[0]"),
        ({"master": {"tasks": [{"id": 1, "title": "x"}, {"id": 1, "title": "y"}]}}, "master.tasks[1].id"),
        ({"master": {"tasks": [{"id": 1, "title": "x", "status": "wip"}]}}, "master.tasks[0].status"),
        (
            {"master": {"tasks": [{"id": 1, "title": "x", "subtasks": [{"id": "a", "title": "s"}]}]}},
            "master.tasks[0].subtasks[0].id",
        ),
        ({"master": {"tasks": "nope"}}, "master.tasks"),
        ([1, 2], "$"),
    ],
)
def test_malformed_files_name_the_place_and_import_nothing(team: Team, data: object, where: str) -> None:
    project = make_project(team)
    before = (Task.objects.count(), Revision.objects.count(), Tag.objects.count())
    with pytest.raises(tmformat.FormatError) as err:
        taskmaster_import(project=project, raw=json.dumps(data), user=None)
    assert str(err.value).startswith(where + ":")
    assert (Task.objects.count(), Revision.objects.count(), Tag.objects.count()) == before


def test_a_bad_tag_later_in_the_file_leaves_earlier_tags_untouched(team: Team) -> None:
    project = imported(team)
    before = taskmaster_export(project=project)
    data = json.loads((FIXTURES / "tasks.json").read_text())
    data["master"]["tasks"][0]["title"] = "changed"
    data["feature-auth"]["tasks"][1]["dependencies"] = [{"id": 1}]
    with pytest.raises(tmformat.FormatError, match=r"feature-auth\.tasks\[1\]\.dependencies\[0\]"):
        taskmaster_import(project=project, raw=json.dumps(data), user=None)
    assert taskmaster_export(project=project) == before


def test_invalid_json_and_binary_files_get_a_clear_message(team: Team) -> None:
    project = make_project(team)
    with pytest.raises(tmformat.FormatError, match="not valid JSON at line 1, column 12"):
        taskmaster_import(project=project, raw='{"master": ', user=None)
    with pytest.raises(tmformat.FormatError, match="not UTF-8"):
        taskmaster_import(project=project, raw=b"\xff\xfe\x00junk", user=None)


def test_reimport_is_a_revision_that_rolls_back_exactly(team: Team) -> None:
    project = imported(team)
    before = taskmaster_export(project=project)
    data = json.loads((FIXTURES / "tasks.json").read_text())
    data["master"]["tasks"] = data["master"]["tasks"][:2]
    taskmaster_import(project=project, raw=json.dumps(data), user=None)
    assert Task.objects.filter(tag=master(project)).count() == 2
    revision = Revision.objects.filter(tag=master(project), workflow="import").first()
    assert revision is not None
    revision_rollback(revision=revision, user=None)
    assert taskmaster_export(project=project) == before


def test_complexity_report_round_trip_and_errors(team: Team) -> None:
    project = imported(team)
    tag = master(project)
    raw = (FIXTURES / "task-complexity-report.json").read_bytes()
    assert complexity_import(tag=tag, raw=raw, user=None) == 2
    report = ComplexityReport.objects.get(task__number=3, task__tag=tag)
    assert report.score == 7 and report.needs_expansion and report.threshold == 6
    out = complexity_export(tag=tag)
    assert out["complexityAnalysis"] == json.loads(raw)["complexityAnalysis"]
    bad = json.loads(raw)
    bad["complexityAnalysis"][1]["taskId"] = 42
    with pytest.raises(tmformat.FormatError, match=r"complexityAnalysis\[1\]\.taskId: tag master has no task 42"):
        complexity_import(tag=tag, raw=json.dumps(bad), user=None)
    bad["complexityAnalysis"][1] = {"taskId": 4, "complexityScore": 11}
    with pytest.raises(tmformat.FormatError, match=r"complexityAnalysis\[1\]\.complexityScore"):
        complexity_import(tag=tag, raw=json.dumps(bad), user=None)
    assert ComplexityReport.objects.filter(task__tag=tag).count() == 2


def test_management_commands_import_and_export(team: Team, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = StringIO()
    call_command(
        "import_taskmaster", str(FIXTURES / "tasks.json"), "--team", "alpha", "--project", "Invoicing", stdout=out
    )
    assert "master: 4 tasks" in out.getvalue()
    project = Project.objects.get(team=team, slug="invoicing")
    target = tmp_path / "out.json"
    call_command("export_taskmaster", "--team", "alpha", "--project", "invoicing", "-o", str(target))
    assert json.loads(target.read_text()) == json.loads((FIXTURES / "tasks.json").read_text())
    stdout = StringIO()
    call_command(
        "export_taskmaster", "--team", "alpha", "--project", "invoicing", "--tag", "feature-auth", stdout=stdout
    )
    assert list(json.loads(stdout.getvalue())) == ["feature-auth"]
    with pytest.raises(CommandError, match=r"master\.tasks"):
        bad = tmp_path / "bad.json"
        bad.write_text('{"master": {"tasks": [{"id": 0, "title": "x"}]}}')
        call_command("import_taskmaster", str(bad), "--team", "alpha", "--project", "invoicing")
    with pytest.raises(CommandError, match="No team"):
        call_command("export_taskmaster", "--team", "nope", "--project", "invoicing")
    assert project.tags.count() == 2
