"""QA gates around planning outputs: one retry with the gate's message, then deterministic repair, never a failure.

The gates are the real ones the recovery app registers; only the model is replaced by a
scripted answer sequence here, so the retry and fallback paths run every time (the real
model repeats titles only sometimes). The workflows' own runs are in test_planning_ai.py.
"""

from __future__ import annotations

from typing import Any

from planning.services.ai import _list_of, merge_generated, schemas, top_up
from planning.services.qa import checked, complexity_shape, merge_subtasks, subtasks_shape, tasks_shape
from taskmaster.qa import problems

S = schemas("short")


def tasks(*specs: tuple[str, list[int]]) -> Any:
    model = _list_of(S.GenTask, "tasks", 1, 8)
    blank = {"description": "", "details": "", "test_strategy": ""}
    return model(tasks=[S.GenTask(title=t, dependencies=d, **blank) for t, d in specs])


def subs(*specs: tuple[str, list[int]]) -> list[Any]:
    return [S.GenSubtask(title=t, description="", details="", dependencies=d) for t, d in specs]


def scripted(*answers: Any) -> tuple[Any, list[str]]:
    prompts: list[str] = []
    queue = list(answers)

    def ask(prompt: str) -> Any:
        prompts.append(prompt)
        return queue.pop(0)

    return ask, prompts


def test_the_shapes_are_what_the_gates_expect() -> None:
    plan = tasks(("Set up", [1]), ("Build API", [1, 3]), ("set  UP", []))
    shape = tasks_shape(plan.tasks, start=5, existing=[1, 2], existing_titles=["Deploy"])
    # Self and forward dependencies are cut as the workflow stores them; only the title repeats remain.
    assert shape["tasks"][1] == {"number": 6, "title": "Build API", "dependencies": [5]}
    assert problems("planning.tasks", shape) == ["task 3 duplicates task 1 (“set UP”)"]
    assert problems("planning.tasks", {**shape, "existing_titles": ["build api"]})[0].startswith("task 2 duplicates")
    two = subs(("Aaa", []), ("Bbb", [2, 1]))
    assert problems("planning.subtasks", subtasks_shape(3, two, 2)) == []
    assert problems("planning.subtasks", subtasks_shape(3, two, 3)) == ["2 subtasks, expected 3 to 3"]
    scored = _list_of(S.Assessment, "tasks", 2, 2)(
        tasks=[
            S.Assessment(score=3, recommended_subtasks=2, expansion_prompt="", reasoning=""),
            S.Assessment(score=9, recommended_subtasks=5, expansion_prompt="", reasoning=""),
        ]
    )
    assert problems("planning.complexity", complexity_shape([4, 7], scored.tasks)) == []
    assert problems("planning.complexity", complexity_shape([4, 4], scored.tasks)) == ["task 4 is assessed twice"]


def test_a_failed_gate_is_retried_once_with_its_message() -> None:
    ask, prompts = scripted(tasks(("Login", []), ("login", [])), tasks(("Login", []), ("Logout", [1])))
    notes: list[str] = []
    answer = checked("planning.tasks", ask, "Write 2 tasks", lambda a: tasks_shape(a.tasks), notes, "section 1")
    assert [t.title for t in answer.tasks] == ["Login", "Logout"]
    assert len(prompts) == 2 and prompts[1].startswith("Write 2 tasks\n\nYour previous answer was rejected: task 2")
    assert "every title must be different" in prompts[1]
    assert notes == ["QA section 1: fixed by one retry (task 2 duplicates task 1 (“login”))"]


def test_a_clean_answer_costs_one_call_and_leaves_no_note() -> None:
    ask, prompts = scripted(tasks(("Login", []), ("Logout", [1])))
    notes: list[str] = []
    checked("planning.tasks", ask, "p", lambda a: tasks_shape(a.tasks), notes, "s")
    assert len(prompts) == 1 and notes == []


def test_a_second_failure_keeps_the_answer_and_repairs_it_deterministically() -> None:
    first = subs(("Write docs", []), ("write  DOCS", [1]), ("Write docs", []))
    second = subs(("Write docs", []), ("Review", [1]), ("write docs", [2]))
    ask, prompts = scripted(first, second)
    notes: list[str] = []
    got = checked("planning.subtasks", ask, "p", lambda a: subtasks_shape(3, a, 3), notes, "task 3")
    assert got is second and len(prompts) == 2  # the retry had fewer problems
    assert notes[0].startswith("QA task 3: subtask 3 duplicates subtask 1") and "merged deterministically" in notes[0]
    merged = merge_subtasks(got)
    assert [(s.title, s.dependencies) for s in merged] == [("Write docs", []), ("Review", [1])]
    # A dependency on a dropped twin moves to the kept one, and never points at itself or forwards.
    again = merge_subtasks(subs(("Aaa", [3]), ("Bbb", []), ("aaa", [2]), ("Ccc", [3, 2]), ("\t \n", []), ("Ddd", [5])))
    assert [(s.title, s.dependencies) for s in again] == [("Aaa", []), ("Bbb", []), ("Ccc", [1, 2]), ("Ddd", [])]
    assert problems("planning.subtasks", subtasks_shape(3, again, 4)) == []


def test_parse_prd_tops_up_once_when_de_duplication_leaves_fewer_than_n() -> None:
    first = tasks(("Set up the repo", []), ("Set up the repo", [1]), ("Build the API", [1]))
    generated = [(t, [d - 1 for d in t.dependencies if d <= k]) for k, t in enumerate(first.tasks)]
    keep: list[int] = []
    alias: dict[int, int] = {}
    merge_generated(generated, keep, alias)
    assert keep == [0, 2] and alias == {1: 0}
    asked: list[tuple[int, list[str]]] = []

    def ask(missing: int, planned: list[str]) -> Any:
        asked.append((missing, planned))
        return tasks(("Write the docs", []), ("Deploy to staging", [1]))

    assert top_up(generated, keep, alias, 2, ask) == 2
    assert asked == [(2, ["Set up the repo", "Build the API"])]
    assert keep == [0, 2, 3, 4] and generated[4][1] == [3]  # the new task's dependency stays within its round
    # A round that only repeats what is planned adds nothing, and there is no second round.
    again = top_up(generated, keep, alias, 1, lambda m, p: tasks(("build the  API", [])))
    assert again == 0 and keep == [0, 2, 3, 4] and alias[5] == 2
