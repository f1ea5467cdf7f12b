"""Dependency algorithms on plain data, no database: validate, fix, cycle checks, next task.

A tag is a graph keyed by refs: ``"3"`` is task 3, ``"3.2"`` is subtask 2 of task 3.
Every function here is pure, so the same code serves the views, the importer and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from planning.models import PRIORITY_RANK, SATISFIED, Priority

Graph = Mapping[str, Sequence[str]]
IssueKind = Literal["missing", "self", "parent", "circular"]
# Items in these states can be picked as the next thing to work on.
WORKABLE = frozenset({"pending", "in-progress"})


class DependencyError(ValueError):
    """A dependency change that would break the graph; the message is for the user."""


@dataclass(frozen=True)
class Issue:
    kind: IssueKind
    item: str
    dependency: str
    message: str


def ref_key(ref: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in ref.split("."))
    except ValueError:
        return (10**9,)


def parent_of(ref: str) -> str | None:
    return ref.split(".", 1)[0] if "." in ref else None


def _label(ref: str) -> str:
    return f"subtask {ref}" if "." in ref else f"task {ref}"


def _sorted(refs: Iterable[str]) -> list[str]:
    return sorted(refs, key=ref_key)


def _local_issue(graph: Graph, item: str, dep: str) -> Issue | None:
    if dep == item:
        return Issue("self", item, dep, f"{_label(item).capitalize()} depends on itself.")
    if dep not in graph:
        return Issue(
            "missing", item, dep, f"{_label(item).capitalize()} depends on {_label(dep)}, which does not exist."
        )
    if parent_of(item) == dep:
        return Issue(
            "parent", item, dep, f"Subtask {item} depends on its own parent task {dep}, which can never finish first."
        )
    return None


def _clean_edges(graph: Graph) -> dict[str, list[str]]:
    return {item: [d for d in deps if _local_issue(graph, item, d) is None] for item, deps in graph.items()}


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a long dependency chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in _sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            deps = graph.get(node, ())
            recurse = False
            while i < len(deps):
                dep = deps[i]
                i += 1
                if dep not in index:
                    work.append((node, i))
                    work.append((dep, 0))
                    recurse = True
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if recurse:
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                components.append(_sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _cycle_path(graph: Mapping[str, Sequence[str]], members: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, for the message."""
    inside = set(members)
    start = members[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = next(d for d in graph[node] if d in inside)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)
        node = nxt


def validate(graph: Graph) -> list[Issue]:
    """Every missing, self, parent and circular dependency, in a stable order."""
    issues = [
        issue for item in _sorted(graph) for dep in graph[item] if (issue := _local_issue(graph, item, dep)) is not None
    ]
    clean = _clean_edges(graph)
    for component in _strongly_connected(clean):
        if len(component) > 1:
            cycle = _cycle_path(clean, component)
            issues.append(Issue("circular", cycle[0], cycle[1], "Circular dependency: " + " → ".join(cycle) + "."))
    return issues


def fix(graph: Graph) -> tuple[dict[str, list[str]], list[Issue]]:
    """The graph without missing/self/parent edges and without cycles, plus what was removed.

    Cycles are broken by dropping the back edges of a depth-first search in ref order:
    a graph without its DFS back edges is acyclic, and the choice is deterministic.
    """
    removed = [
        issue for item in _sorted(graph) for dep in graph[item] if (issue := _local_issue(graph, item, dep)) is not None
    ]
    clean = {item: list(dict.fromkeys(deps)) for item, deps in _clean_edges(graph).items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in _sorted(clean):
        if root in state:
            continue
        state[root] = 1
        work: list[tuple[str, int]] = [(root, 0)]
        path = [root]
        while work:
            node, i = work.pop()
            deps = clean[node]
            advanced = False
            while i < len(deps):
                dep = deps[i]
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    removed.append(
                        Issue("circular", node, dep, "Removed to break the cycle " + " → ".join(cycle) + ".")
                    )
                    deps.pop(i)
                    continue
                i += 1
                if dep not in state:
                    state[dep] = 1
                    work.append((node, i))
                    work.append((dep, 0))
                    path.append(dep)
                    advanced = True
                    break
            if not advanced:
                state[node] = 2
                path.pop()
    return clean, removed


def reaches(graph: Graph, start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo.extend(d for d in graph.get(node, ()) if d not in seen)
    return False


def check_add(graph: Graph, item: str, dep: str) -> None:
    """Raise DependencyError unless ``item`` may newly depend on ``dep``."""
    if item not in graph:
        raise DependencyError(f"{_label(item).capitalize()} does not exist.")
    if dep in graph[item]:
        raise DependencyError(f"{_label(item).capitalize()} already depends on {_label(dep)}.")
    issue = _local_issue(graph, item, dep)
    if issue is not None:
        raise DependencyError(issue.message)
    if parent_of(dep) == item:
        raise DependencyError(f"Task {item} cannot depend on its own subtask {dep}; subtasks are part of it.")
    if reaches(graph, dep, item):
        raise DependencyError(
            f"{_label(item).capitalize()} cannot depend on {_label(dep)}: {_label(dep)} already depends on "
            f"{_label(item)} (directly or through others), which would make a cycle."
        )


# --- next task -----------------------------------------------------------------------


@dataclass
class Item:
    ref: str
    status: str
    priority: str = Priority.MEDIUM
    deps: list[str] = field(default_factory=list)
    title: str = ""


def _ready(item: Item, status: Mapping[str, str]) -> bool:
    # A dependency that does not exist blocks nothing (validate reports it separately).
    return item.status in WORKABLE and all(status.get(d, "done") in SATISFIED for d in item.deps)


def _rank(item: Item) -> tuple[int, int, tuple[int, ...]]:
    return (PRIORITY_RANK.get(Priority(item.priority), 2), len(item.deps), ref_key(item.ref))


def next_item(items: Sequence[Item]) -> Item | None:
    """The documented rule (shown on the Next page):

    1. a ready subtask of an in-progress task, by priority, fewest dependencies, then number;
    2. otherwise a ready top-level task by priority, then fewest dependencies, then lowest number.

    Ready means pending or in-progress with every dependency done or cancelled.
    """
    status = {i.ref: i.status for i in items}
    active_parents = {i.ref for i in items if "." not in i.ref and i.status == "in-progress"}
    subtasks = [i for i in items if parent_of(i.ref) in active_parents and _ready(i, status)]
    if subtasks:
        return min(subtasks, key=_rank)
    tasks = [i for i in items if "." not in i.ref and _ready(i, status)]
    return min(tasks, key=_rank) if tasks else None
