"""QA gates registered with ``taskmaster.qa``: what each AI output must satisfy before it is committed.

Feature apps call ``taskmaster.qa.check(kind, output)`` with these exact shapes (plain
Python values, no model instances); ``check`` raises ``QAFailed`` listing every problem.

``planning.tasks`` — the tasks a workflow is about to write, in order::

    {"tasks": [{"number": 7, "title": "Set up CI", "dependencies": [5, 6]}, ...],
     "existing": [1, 2, 3, 4, 5]}      # optional: numbers of tasks already in the tag

  ``output`` may also be the bare list. ``number`` is the number the task will get (unique in
  the list; when absent the 1-based position is used). Each ``dependencies`` entry must be the
  number of another task of the list or of ``existing``, never itself, and the dependencies
  among the listed tasks must not form a cycle. Titles must be non-blank and unique within the
  list (case and spacing ignored), and must not repeat a title in ``existing_titles`` (optional
  list of str).

``planning.subtasks`` — the subtasks about to be written under one task::

    {"task": 7, "subtasks": [{"title": "Write the config", "dependencies": []},
                             {"title": "Add the job", "dependencies": [1]}],
     "min": 2, "max": 5}                # optional bounds, default 1 and RECOVERY_QA_MAX_SUBTASKS (20)

  ``dependencies`` are 1-based positions of EARLIER subtasks in the same list. Titles as above.

``planning.complexity`` — one assessment per task::

    [{"task": 7, "score": 6, "recommended_subtasks": 4}, ...]

  ``score`` is an int in 1..10; ``recommended_subtasks`` an int in 1..RECOVERY_QA_MAX_SUBTASKS;
  each task at most once.

``research.answer`` — the answer text and how many passages were given to the model::

    {"text": "Paris is the capital [1], see also [2, 3].", "passage_count": 3}

  Every citation ``[n]`` (also ``[n, m]`` and ``[n-m]``) must name a passage 1..passage_count.
  An answer without citations passes (the small model often omits them; that is a quality
  signal for analytics, not a reason to discard a grounded answer).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from taskmaster.qa import register_gate

DASHES = "-\u2013"  # hyphen and en dash
CITATION = re.compile(rf"\[(\d+(?:\s*[{DASHES},]\s*\d+)*)\]")


def _max_subtasks() -> int:
    return int(getattr(settings, "RECOVERY_QA_MAX_SUBTASKS", 20))


def _norm(title: Any) -> str:
    return " ".join(str(title or "").split()).casefold()


def _titles(items: list[dict[str, Any]], label: str, taken: set[str] | None = None) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items, start=1):
        title = _norm(item.get("title"))
        if not title:
            problems.append(f"{label} {i} has an empty title")
            continue
        if title in seen:
            problems.append(f"{label} {i} duplicates {label} {seen[title]} (“{item.get('title')}”)")
        elif taken and title in taken:
            problems.append(f"{label} {i} duplicates an existing task (“{item.get('title')}”)")
        seen.setdefault(title, i)
    return problems


def _int_list(value: Any) -> list[int] | None:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    return list(value)


def _cycle(graph: dict[int, list[int]]) -> list[int] | None:
    """One dependency cycle among ``graph``'s nodes, or None."""
    state: dict[int, int] = {}
    stack: list[int] = []

    def visit(node: int) -> list[int] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return None


def gate_tasks(output: Any) -> list[str]:
    if isinstance(output, dict):
        items, existing = output.get("tasks"), set(output.get("existing") or [])
        taken = {_norm(t) for t in output.get("existing_titles") or []}
    else:
        items, existing, taken = output, set(), set()
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        return ["planning.tasks output must be a list of task dicts"]
    if not items:
        return ["the plan has no tasks"]
    problems = _titles(items, "task", taken)
    numbers: list[int] = [t.get("number", i) for i, t in enumerate(items, start=1)]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        problems.append(f"task numbers used twice: {', '.join(map(str, dupes))}")
    graph: dict[int, list[int]] = {}
    known = set(numbers) | existing
    for number, item in zip(numbers, items, strict=True):
        deps = _int_list(item.get("dependencies"))
        if deps is None:
            problems.append(f"task {number}: dependencies must be a list of task numbers")
            continue
        if number in deps:
            problems.append(f"task {number} depends on itself")
        unknown = sorted({d for d in deps if d not in known})
        if unknown:
            problems.append(f"task {number} depends on unknown task(s) {', '.join(map(str, unknown))}")
        graph[number] = [d for d in deps if d != number]
    cycle = _cycle(graph)
    if cycle:
        problems.append("dependency cycle: " + " → ".join(map(str, cycle)))
    return problems


def gate_subtasks(output: Any) -> list[str]:
    if not isinstance(output, dict) or not isinstance(output.get("subtasks"), list):
        return ['planning.subtasks output must be {"task": n, "subtasks": [...]}']
    items = output["subtasks"]
    low, high = int(output.get("min", 1)), int(output.get("max", _max_subtasks()))
    high = min(high, _max_subtasks())
    problems: list[str] = []
    if not low <= len(items) <= high:
        problems.append(f"{len(items)} subtasks, expected {low} to {high}")
    if not all(isinstance(s, dict) for s in items):
        return [*problems, "every subtask must be a dict"]
    problems += _titles(items, "subtask")
    for k, sub in enumerate(items, start=1):
        deps = _int_list(sub.get("dependencies"))
        if deps is None:
            problems.append(f"subtask {k}: dependencies must be a list of positions")
            continue
        bad = sorted({d for d in deps if not 1 <= d < k})
        if bad:
            problems.append(f"subtask {k} depends on {', '.join(map(str, bad))}, not an earlier subtask")
    return problems


def gate_complexity(output: Any) -> list[str]:
    if not isinstance(output, list) or not all(isinstance(a, dict) for a in output):
        return ["planning.complexity output must be a list of assessment dicts"]
    problems: list[str] = []
    seen: set[Any] = set()
    for a in output:
        task, score, subs = a.get("task"), a.get("score"), a.get("recommended_subtasks")
        if task in seen:
            problems.append(f"task {task} is assessed twice")
        seen.add(task)
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 10:
            problems.append(f"task {task}: score {score!r} is not within 1..10")
        if subs is not None and (not isinstance(subs, int) or not 1 <= subs <= _max_subtasks()):
            problems.append(f"task {task}: recommended_subtasks {subs!r} is not within 1..{_max_subtasks()}")
    return problems


def citations(text: str) -> list[int]:
    found: list[int] = []
    for group in CITATION.findall(text):
        for part in re.split(r"\s*,\s*", group):
            if re.search(rf"[{DASHES}]", part):
                a, b = (int(x) for x in re.split(rf"\s*[{DASHES}]\s*", part))
                found.extend(range(min(a, b), min(max(a, b), min(a, b) + 50) + 1))
            else:
                found.append(int(part))
    return found


def gate_answer(output: Any) -> list[str]:
    if not isinstance(output, dict) or not isinstance(output.get("text"), str):
        return ['research.answer output must be {"text": str, "passage_count": int}']
    count = output.get("passage_count")
    if not isinstance(count, int) or count < 0:
        return ["research.answer passage_count must be a non-negative int"]
    outside = sorted({n for n in citations(output["text"]) if not 1 <= n <= count})
    if not outside:
        return []
    given = f"passages 1..{count}" if count else "no passages"
    return [f"cites [{', '.join(map(str, outside))}] but the answer was given {given}"]


def register() -> None:
    register_gate("planning.tasks", gate_tasks)
    register_gate("planning.subtasks", gate_subtasks)
    register_gate("planning.complexity", gate_complexity)
    register_gate("research.answer", gate_answer)
