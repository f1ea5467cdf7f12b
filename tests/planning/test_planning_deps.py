"""The pure dependency algorithms and their database services."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from planning import deps
from planning.deps import Item, next_item
from planning.models import Revision, Status, Subtask, Task
from planning.services import (
    dependencies_fix,
    dependency_add,
    dependency_remove,
    item_set_status,
    subtask_create,
    subtask_promote,
    tag_copy,
    tag_create,
    tasks_move,
)
from planning.snapshot import tag_graph
from taskmaster.models import Team
from tests.planning.factories import add_tasks, imported, make_project, master


def kinds(issues: list[deps.Issue]) -> list[tuple[str, str, str]]:
    return [(i.kind, i.item, i.dependency) for i in issues]


def test_validate_reports_missing_self_and_parent() -> None:
    graph = {"1": ["1", "9"], "2": ["1"], "2.1": ["2", "7.1"], "2.2": ["2.2"]}
    assert kinds(deps.validate(graph)) == [
        ("self", "1", "1"),
        ("missing", "1", "9"),
        ("parent", "2.1", "2"),
        ("missing", "2.1", "7.1"),
        ("self", "2.2", "2.2"),
    ]


def test_validate_finds_cycles_among_tasks_subtasks_and_across_levels() -> None:
    among_tasks = {"1": ["3"], "2": ["1"], "3": ["2"], "4": []}
    issue = deps.validate(among_tasks)
    assert [i.kind for i in issue] == ["circular"]
    assert "1 → 3 → 2 → 1" in issue[0].message
    among_subtasks = {"1": [], "1.1": ["1.2"], "1.2": ["1.1"]}
    assert [i.kind for i in deps.validate(among_subtasks)] == ["circular"]
    across = {"1": ["2.1"], "2": [], "2.1": ["3"], "3": ["1"]}
    issues = deps.validate(across)
    assert [i.kind for i in issues] == ["circular"]
    assert "2.1" in issues[0].message


def test_fix_removes_everything_and_leaves_an_acyclic_graph() -> None:
    graph = {"1": ["3", "1", "8"], "2": ["1"], "3": ["2"], "3.1": ["3.2", "3"], "3.2": ["3.1"], "4": ["2.5", "3.1"]}
    fixed, removed = deps.fix(graph)
    assert deps.validate(fixed) == []
    assert {i.kind for i in removed} == {"self", "missing", "parent", "circular"}
    # Only what was necessary went: one edge per cycle (the DFS back edge), 4 → 3.1 survives.
    assert fixed["1"] == ["3"] and fixed["2"] == [] and fixed["4"] == ["3.1"]
    assert len([i for i in removed if i.kind == "circular"]) == 2


def test_fix_handles_a_long_chain_without_recursion() -> None:
    graph = {str(i): [str(i + 1)] for i in range(1, 3000)} | {"3000": ["1"]}
    fixed, removed = deps.fix(graph)
    assert len(removed) == 1 and deps.validate(fixed) == []


def test_check_add_rejects_self_cycle_missing_and_own_subtask() -> None:
    graph = {"1": [], "2": ["1"], "2.1": [], "3": ["2"]}
    deps.check_add(graph, "3", "1")
    for item, dep, words in [
        ("1", "1", "itself"),
        ("1", "3", "cycle"),
        ("1", "9", "does not exist"),
        ("2", "2.1", "own subtask"),
        ("2.1", "2", "own parent"),
        ("3", "2", "already"),
    ]:
        with pytest.raises(deps.DependencyError, match=words):
            deps.check_add(graph, item, dep)


def test_next_task_prefers_a_ready_subtask_of_an_in_progress_parent() -> None:
    items = [
        Item("1", "done"),
        Item("2", "in-progress", "low", ["1"]),
        Item("2.1", "done"),
        Item("2.2", "pending", "medium", ["2.1"]),
        Item("2.3", "pending", "high", ["2.2"]),
        Item("3", "pending", "critical"),
    ]
    assert next_item(items).ref == "2.2"  # type: ignore[union-attr]


def test_next_task_ranks_priority_then_fewest_dependencies_then_number() -> None:
    items = [
        Item("1", "done"),
        Item("2", "cancelled"),
        Item("3", "pending", "high", ["1", "2"]),
        Item("4", "pending", "high", ["1"]),
        Item("5", "pending", "high", ["1"]),
        Item("6", "pending", "critical", ["7"]),
        Item("7", "pending", "low"),
        Item("8", "deferred", "critical"),
    ]
    assert next_item(items).ref == "4"  # type: ignore[union-attr]
    items[3].status = "done"
    items[4].status = "done"
    assert next_item(items).ref == "3"  # type: ignore[union-attr]
    assert next_item([Item("1", "done"), Item("2", "blocked")]) is None


def test_dependency_services_reject_cycles_with_a_clear_error(team: Team) -> None:
    tag = master(make_project(team))
    add_tasks(tag, "a", "b", "c")
    dependency_add(tag=tag, item_ref="2", dep_ref="1")
    dependency_add(tag=tag, item_ref="3", dep_ref="2")
    with pytest.raises(ValidationError, match="cycle"):
        dependency_add(tag=tag, item_ref="1", dep_ref="3")
    with pytest.raises(ValidationError, match="itself"):
        dependency_add(tag=tag, item_ref="1", dep_ref="1")
    sub = subtask_create(task=Task.objects.get(tag=tag, number=3), title="s")
    dependency_add(tag=tag, item_ref="1", dep_ref=sub.ref)  # cross-level is fine
    with pytest.raises(ValidationError, match="cycle"):
        dependency_add(tag=tag, item_ref="3.1", dep_ref="1")
    dependency_remove(tag=tag, item_ref="3", dep_ref="2")
    assert tag_graph(tag) == {"1": ["3.1"], "2": ["1"], "3": [], "3.1": []}


def test_fix_dependencies_in_the_database_records_a_revision(team: Team) -> None:
    project = imported(team)
    tag = master(project)
    # Make a cycle 2 → 4 → 3 → 2 by writing the cross refs directly (as a hand-edited import would).
    t2 = Task.objects.get(tag=tag, number=2)
    t2.cross_dependencies = ["4", "99"]
    t2.save()
    issues = deps.validate(tag_graph(tag))
    assert {i.kind for i in issues} == {"missing", "circular"}
    revision, removed = dependencies_fix(tag=tag, user=None)
    assert revision is not None and len(removed) == 2
    assert deps.validate(tag_graph(tag)) == []
    assert dependencies_fix(tag=tag, user=None) == (None, [])


def test_marking_a_parent_done_marks_its_subtasks_done(team: Team) -> None:
    tag = master(imported(team))
    parent = Task.objects.get(tag=tag, number=2)
    changed = item_set_status(item=parent, status=Status.DONE, user=None)
    assert changed == ["2", "2.2", "2.3"]
    assert set(parent.subtasks.values_list("status", flat=True)) == {"done"}
    assert Revision.objects.filter(tag=tag, workflow="set-status").count() == 1


def test_move_tasks_between_tags_keeps_internal_deps_and_drops_crossing_ones(team: Team) -> None:
    project = imported(team)
    source = master(project)
    target = tag_create(project=project, name="later")
    add_tasks(target, "existing", "second", "third")
    result = tasks_move(source=source, target=target, numbers=[3, 4], user=None)
    assert result["moved"] == {3: 4, 4: 5}  # 3 is taken in the target: renumbered, dependency follows
    assert tag_graph(target) == {"1": [], "2": [], "3": [], "4": [], "5": ["4"]}
    assert sorted(result["dropped_dependencies"]) == ["3 → 2", "3 → 2.2"]
    assert list(Task.objects.filter(tag=source).values_list("number", flat=True)) == [1, 2]


def test_copy_tag_and_promote_subtask(team: Team) -> None:
    project = imported(team)
    copy = tag_copy(tag=master(project), name="copy", user=None)
    assert tag_graph(copy) == tag_graph(master(project))
    sub = Subtask.objects.get(parent__tag=copy, parent__number=2, number=2)
    task = subtask_promote(subtask=sub, user=None)
    graph = tag_graph(copy)
    assert task.number == 5
    assert graph["5"] == ["2.1"]
    assert graph["3"] == ["2", "5"]  # what pointed at 2.2 now points at the new task
    assert graph["2.3"] == ["1", "5"]
