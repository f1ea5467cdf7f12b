"""Importing items and baselines: JSON, CSV and Task Master complexity reports; atomic, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.quality import services
from analytics.quality.importers import ImportProblem
from analytics.quality.models import Suite
from tests.conftest import Trio

REPORT = Path(__file__).parent / "fixtures" / "task-complexity-report-invoicing.json"


@pytest.fixture
def complexity(trio: Trio) -> Suite:
    return services.suite_create(team=trio.team, name="Complexity", kind="complexity", user=trio.owner)


def test_task_master_complexity_report_becomes_baselines(complexity: Suite) -> None:
    counts = services.suite_import_file(suite=complexity, data=REPORT.read_bytes(), name=REPORT.name)
    assert counts == {"created": 2, "updated": 0}
    items = {i.key: i for i in complexity.items.all()}
    assert set(items) == {"3", "4"}
    assert items["3"].title == "Invoice API"
    assert items["3"].baseline["score"] == 7.0
    assert items["3"].baseline["recommended_subtasks"] == 4
    assert items["4"].baseline["reasoning"] == "Straightforward with an existing relay."
    assert items["4"].expected_score is None
    # A human score added later by CSV lands on the same item, and the baseline stays.
    csv_data = b"key,expected_score\n3,6\n"
    assert services.suite_import_file(suite=complexity, data=csv_data, name="human.csv") == {"created": 0, "updated": 1}
    items["3"].refresh_from_db()
    assert (items["3"].expected_score, items["3"].baseline["score"]) == (6.0, 7.0)


def test_malformed_report_names_the_place_and_imports_nothing(complexity: Suite) -> None:
    doc = json.loads(REPORT.read_text())
    doc["complexityAnalysis"][1]["complexityScore"] = "high"
    with pytest.raises(ImportProblem, match=r"complexityAnalysis\[1\]\.complexityScore: expected a number"):
        services.suite_import_file(suite=complexity, data=json.dumps(doc).encode(), name="report.json")
    del doc["complexityAnalysis"][0]["taskId"]
    with pytest.raises(ImportProblem, match=r"complexityAnalysis\[0\]: taskId is missing"):
        services.suite_import_file(suite=complexity, data=json.dumps(doc).encode(), name="report.json")
    with pytest.raises(ImportProblem, match=r"not valid JSON.*line 1"):
        services.suite_import_file(suite=complexity, data=b"{nope", name="report.json")
    assert complexity.items.count() == 0


def test_a_bad_row_late_in_the_file_rolls_back_the_earlier_rows(trio: Trio) -> None:
    suite = services.suite_create(team=trio.team, name="Docs", kind="research", user=trio.owner)
    items = [
        {"key": "q1", "text": "What is X?", "expected_answer": "X is a thing.", "expected_sources": ["Guide"]},
        {"key": "q2", "text": "What is Y?"},  # neither expected answer nor sources
    ]
    with pytest.raises(ImportProblem, match=r"item 2 \(key 'q2'\): a research item needs expected_answer"):
        services.suite_import_file(suite=suite, data=json.dumps({"items": items}).encode(), name="items.json")
    assert suite.items.count() == 0
    items[1]["expected_answer"] = "Y is another."
    items[1]["baseline"] = {"answer": "Y is another thing.", "sources": ["Guide"]}
    services.suite_import_file(suite=suite, data=json.dumps(items).encode(), name="items.json")
    q2 = suite.items.get(key="q2")
    assert q2.baseline == {"answer": "Y is another thing.", "sources": ["Guide"]}


def test_csv_errors_name_row_and_column(trio: Trio) -> None:
    suite = services.suite_create(team=trio.team, name="Plans", kind="planning_prd", user=trio.owner)
    with pytest.raises(ImportProblem, match=r"row 1: unknown column\(s\) colour"):
        services.suite_import_file(suite=suite, data=b"key,text,colour\n1,a,b\n", name="p.csv")
    bad = b"key,text,expected_tasks,baseline_score\n1,Build a shop,Cart|Checkout,\n2,Build a blog,Posts,eleven\n"
    with pytest.raises(ImportProblem, match=r"p.csv, row 3, baseline_score: expected a number, got 'eleven'"):
        services.suite_import_file(suite=suite, data=bad, name="p.csv")
    with pytest.raises(ImportProblem, match=r"upload a \.json or \.csv"):
        services.suite_import_file(suite=suite, data=b"x", name="p.txt")
    assert suite.items.count() == 0
    good = b"key,text,expected_tasks,baseline_tasks\n1,Build a shop,Cart|Checkout,Cart page\n"
    services.suite_import_file(suite=suite, data=good, name="p.csv")
    item = suite.items.get()
    assert (item.expected_tasks, item.baseline) == (["Cart", "Checkout"], {"tasks": ["Cart page"]})


def test_complexity_items_need_a_reference(complexity: Suite) -> None:
    with pytest.raises(ImportProblem, match="needs expected_score or a baseline score"):
        services.suite_import_file(suite=complexity, data=b"key,title,text\n1,T,Do it\n", name="c.csv")
    with pytest.raises(ImportProblem, match="between 0 and 10"):
        services.suite_import_file(suite=complexity, data=b"key,text,expected_score\n1,Do it,12\n", name="c.csv")
