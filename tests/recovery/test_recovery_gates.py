"""The QA gates, called through taskmaster.qa exactly as the feature apps call them."""

from __future__ import annotations

import pytest

from taskmaster import qa


def _problems(kind: str, output: object) -> list[str]:
    return qa.problems(kind, output)


def test_a_good_plan_passes_and_check_does_not_raise() -> None:
    plan = {
        "tasks": [
            {"number": 3, "title": "Set up CI", "dependencies": [1]},
            {"number": 4, "title": "Write tests", "dependencies": [3, 2]},
        ],
        "existing": [1, 2],
    }
    assert _problems("planning.tasks", plan) == []
    qa.check("planning.tasks", plan)
    assert _problems("planning.tasks", [{"title": "Only", "dependencies": []}]) == []


def test_plan_problems_are_each_named() -> None:
    plan = [
        {"number": 1, "title": "  ", "dependencies": []},
        {"number": 2, "title": "Build API", "dependencies": [3]},
        {"number": 3, "title": "build  api", "dependencies": [2]},
        {"number": 4, "title": "Deploy", "dependencies": [4, 9]},
    ]
    with pytest.raises(qa.QAFailed) as err:
        qa.check("planning.tasks", plan)
    problems = err.value.problems
    assert "task 1 has an empty title" in problems
    assert any("task 3 duplicates task 2" in p for p in problems)
    assert "task 4 depends on itself" in problems
    assert "task 4 depends on unknown task(s) 9" in problems
    assert any(p.startswith("dependency cycle: ") and "2" in p and "3" in p for p in problems)
    assert err.value.error_class == "qa_failed"
    assert _problems("planning.tasks", []) == ["the plan has no tasks"]
    assert _problems("planning.tasks", "nonsense") == ["planning.tasks output must be a list of task dicts"]
    dup_numbers = [{"number": 1, "title": "a"}, {"number": 1, "title": "b"}]
    assert "task numbers used twice: 1" in _problems("planning.tasks", dup_numbers)
    taken = {"tasks": [{"number": 5, "title": "Set up CI"}], "existing_titles": ["set up ci"]}
    assert _problems("planning.tasks", taken) == ["task 1 duplicates an existing task (“Set up CI”)"]
    assert _problems("planning.tasks", [{"title": "x", "dependencies": "1"}]) == [
        "task 1: dependencies must be a list of task numbers"
    ]


def test_subtask_counts_titles_and_dependencies() -> None:
    good = {"task": 7, "subtasks": [{"title": "A", "dependencies": []}, {"title": "B", "dependencies": [1]}]}
    assert _problems("planning.subtasks", good) == []
    bad = {
        "task": 7,
        "min": 3,
        "max": 5,
        "subtasks": [{"title": "A", "dependencies": [1]}, {"title": "a", "dependencies": [3]}],
    }
    problems = _problems("planning.subtasks", bad)
    assert "2 subtasks, expected 3 to 5" in problems
    assert any("subtask 2 duplicates subtask 1" in p for p in problems)
    assert "subtask 1 depends on 1, not an earlier subtask" in problems
    assert "subtask 2 depends on 3, not an earlier subtask" in problems
    too_many = {"task": 1, "subtasks": [{"title": f"s{i}"} for i in range(21)]}
    assert _problems("planning.subtasks", too_many) == ["21 subtasks, expected 1 to 20"]
    assert _problems("planning.subtasks", [1]) == ['planning.subtasks output must be {"task": n, "subtasks": [...]}']


def test_complexity_scores_must_be_within_range() -> None:
    assert _problems("planning.complexity", [{"task": 1, "score": 1}, {"task": 2, "score": 10}]) == []
    problems = _problems(
        "planning.complexity",
        [
            {"task": 1, "score": 0},
            {"task": 2, "score": 11, "recommended_subtasks": 3},
            {"task": 2, "score": 5},
            {"task": 3, "score": "7"},
            {"task": 4, "score": 5, "recommended_subtasks": 0},
        ],
    )
    assert problems == [
        "task 1: score 0 is not within 1..10",
        "task 2: score 11 is not within 1..10",
        "task 2 is assessed twice",
        "task 3: score '7' is not within 1..10",
        "task 4: recommended_subtasks 0 is not within 1..20",
    ]


def test_answer_citations_must_point_at_retrieved_passages() -> None:
    assert _problems("research.answer", {"text": "Paris [1], also [2, 3] and [1-3].", "passage_count": 3}) == []
    assert _problems("research.answer", {"text": "No citations at all.", "passage_count": 2}) == []
    assert _problems("research.answer", {"text": "See [2] and [4, 5] and [0].", "passage_count": 3}) == [
        "cites [0, 4, 5] but the answer was given passages 1..3"
    ]
    assert _problems("research.answer", {"text": "Made up [1].", "passage_count": 0}) == [
        "cites [1] but the answer was given no passages"
    ]
    assert _problems("research.answer", {"text": "ranges [2\u20134]", "passage_count": 3}) == [
        "cites [4] but the answer was given passages 1..3"
    ]
    assert _problems("research.answer", "text") == [
        'research.answer output must be {"text": str, "passage_count": int}'
    ]
