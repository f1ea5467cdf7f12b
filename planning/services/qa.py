"""QA gates (``taskmaster.qa``) around the planning AI outputs.

The design, because the small default model often repeats a title:

1. Each generated list is checked with the gate for its kind, in the shape it will be
   written (dependencies already cut to earlier items, as the workflows store them).
2. On ``QAFailed`` the generation is retried once, with the gate's problems appended to
   the prompt (e.g. "task 2 duplicates task 1", so titles must be unique).
3. If the retry fails too, the workflow keeps the answer with fewer problems and repairs
   it deterministically: the existing de-duplication/merge of titles, blank titles
   dropped, backward-only dependencies. The gate failure is recorded in the job message
   and result (``result["qa"]``).

A job that has a usable result is never failed by a gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskmaster.qa import QAFailed, check

HINT = "Write it again and fix exactly that: every title must be different and non-empty."


def _earlier(deps: Sequence[int], position: int) -> list[int]:
    """1-based dependencies that point strictly backwards from ``position`` (1-based)."""
    return list(dict.fromkeys(d for d in deps if 1 <= d < position))


def tasks_shape(
    tasks: Sequence[Any], *, start: int = 1, existing: Sequence[int] = (), existing_titles: Sequence[str] = ()
) -> dict[str, Any]:
    """``planning.tasks`` input for generated tasks numbered from ``start`` in list order."""
    return {
        "tasks": [
            {
                "number": start + i,
                "title": t.title,
                "dependencies": [start + d - 1 for d in _earlier(t.dependencies, i + 1)],
            }
            for i, t in enumerate(tasks)
        ],
        "existing": list(existing),
        "existing_titles": list(existing_titles),
    }


def subtasks_shape(task_number: int, subtasks: Sequence[Any], count: int) -> dict[str, Any]:
    return {
        "task": task_number,
        "subtasks": [
            {"title": s.title, "dependencies": _earlier(s.dependencies, k + 1)} for k, s in enumerate(subtasks)
        ],
        "min": count,
        "max": count,
    }


def complexity_shape(numbers: Sequence[int], assessments: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"task": n, "score": a.score, "recommended_subtasks": a.recommended_subtasks}
        for n, a in zip(numbers, assessments, strict=True)
    ]


def checked(
    kind: str,
    ask: Callable[[str], Any],
    prompt: str,
    shape: Callable[[Any], Any],
    notes: list[str],
    label: str,
) -> Any:
    """Ask, gate, retry once with the gate's message; never raise for a gate (see the module doc)."""
    answer = ask(prompt)
    try:
        check(kind, shape(answer))
        return answer
    except QAFailed as exc:
        first = exc.problems
    retry_prompt = f"{prompt}\n\nYour previous answer was rejected: {'; '.join(first)[:400]}. {HINT}"
    retried = ask(retry_prompt)
    try:
        check(kind, shape(retried))
    except QAFailed as exc:
        notes.append(f"QA {label}: {'; '.join(exc.problems)[:200]} (still after one retry; merged deterministically)")
        return retried if len(exc.problems) <= len(first) else answer
    notes.append(f"QA {label}: fixed by one retry ({first[0][:120]})")
    return retried


def norm_title(title: str) -> str:
    return " ".join(title.split()).casefold()


def merge_subtasks(subtasks: Sequence[Any]) -> list[Any]:
    """Drop blank and repeated titles (a dependency on a repeat moves to its twin); backward dependencies only."""
    kept: list[Any] = []
    position: dict[int, int] = {}  # old 1-based position -> new 1-based position
    seen: dict[str, int] = {}
    for old, sub in enumerate(subtasks, start=1):
        key = norm_title(sub.title)
        if not key:  # a title of blanks only: dropped, and dependencies on it with it
            continue
        if key in seen:
            position[old] = seen[key]
            continue
        kept.append(sub)
        seen[key] = position[old] = len(kept)
    out = []
    for new, sub in enumerate(kept, start=1):
        deps = [position[d] for d in sub.dependencies if d in position]
        out.append(sub.model_copy(update={"dependencies": _earlier(deps, new)}))
    return out
