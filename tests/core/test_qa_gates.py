from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskmaster import qa


@pytest.fixture
def clean_gates() -> Iterator[None]:
    saved = {kind: list(gates) for kind, gates in qa._gates.items()}
    qa._gates.clear()
    yield
    qa._gates.clear()
    qa._gates.update(saved)


def test_check_passes_without_problems_and_names_every_problem_otherwise(clean_gates: None) -> None:
    qa.register_gate("demo", lambda out: [f"empty title at {i}" for i, t in enumerate(out) if not t])
    qa.register_gate("demo", lambda out: ["duplicate titles"] if len(set(out)) < len(out) else [])
    qa.check("demo", ["a", "b"])
    qa.check("unknown-kind", object())  # no gates: nothing to object to
    with pytest.raises(qa.QAFailed) as err:
        qa.check("demo", ["a", "", ""])
    assert err.value.problems == ["empty title at 1", "empty title at 2", "duplicate titles"]
    assert err.value.error_class == "qa_failed" and "demo output failed QA" in str(err.value)
