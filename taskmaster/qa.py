"""QA gates: validators that every AI output passes before it is committed.

Feature apps call ``check(kind, output)`` just before they write an AI result; the
recovery app registers the validators (``register_gate``) in its ``AppConfig.ready()``,
so the core and the feature apps never import it. A failed gate raises ``QAFailed``,
an ``LLMError`` whose ``error_class`` the recovery layer diagnoses like any other.

Kinds in use: ``planning.tasks`` (a list of generated tasks), ``planning.subtasks``,
``planning.complexity``, ``research.answer``. What ``output`` is for each kind is
documented by the caller next to its ``check`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskmaster.llm.errors import LLMError

Gate = Callable[[Any], list[str]]
_gates: dict[str, list[Gate]] = {}


class QAFailed(LLMError):
    error_class = "qa_failed"

    def __init__(self, kind: str, problems: list[str]) -> None:
        super().__init__(f"{kind} output failed QA: " + "; ".join(problems))
        self.kind = kind
        self.problems = problems


def register_gate(kind: str, gate: Gate) -> None:
    gates = _gates.setdefault(kind, [])
    if gate not in gates:
        gates.append(gate)


def problems(kind: str, output: Any) -> list[str]:
    found: list[str] = []
    for gate in _gates.get(kind, []):
        found.extend(gate(output))
    return found


def check(kind: str, output: Any) -> None:
    """Raise ``QAFailed`` naming every problem the registered gates find in ``output``."""
    found = problems(kind, output)
    if found:
        raise QAFailed(kind, found)
