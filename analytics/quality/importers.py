"""Parse suite items and baselines from JSON, CSV and Task Master complexity reports.

Parsers only read: they return plain records or raise ``ImportProblem`` naming the
place ("row 3, column expected_score: ..."); services apply the records atomically.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from taskmaster.uploads import looks_like_json, sniff

MAX_BYTES = 2 * 1024 * 1024
MAX_ITEMS = 500
CSV_COLUMNS = {
    "key",
    "title",
    "text",
    "expected_answer",
    "expected_sources",
    "expected_tasks",
    "expected_score",
    "baseline_answer",
    "baseline_sources",
    "baseline_tasks",
    "baseline_score",
}


class ImportProblem(ValueError):
    """Malformed input; the message says where and what."""


@dataclass
class Record:
    key: str
    title: str = ""
    text: str = ""
    expected_answer: str = ""
    expected_sources: list[str] = field(default_factory=list)
    expected_tasks: list[str] = field(default_factory=list)
    expected_score: float | None = None
    baseline: dict[str, Any] = field(default_factory=dict)


def _decode(data: bytes, name: str) -> str:
    if len(data) > MAX_BYTES:
        raise ImportProblem(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportProblem(f"{name} is not UTF-8 text (byte {exc.start}).") from None


def _score(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ImportProblem(f"{where}: expected a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImportProblem(f"{where}: expected a number, got {value!r}.") from None
    if not 0 <= number <= 10:
        raise ImportProblem(f"{where}: a complexity score is between 0 and 10, got {number:g}.")
    return number


def _text(value: Any, where: str, limit: int = 20000) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ImportProblem(f"{where}: expected text, got {type(value).__name__}.")
    text = str(value).strip()
    if len(text) > limit:
        raise ImportProblem(f"{where}: longer than {limit} characters.")
    return text


def _titles(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        # CSV cells hold several titles separated by "|".
        return [t.strip() for t in value.split("|") if t.strip()]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ImportProblem(f"{where}: expected a list of titles.")
    if len(value) > 50:
        raise ImportProblem(f"{where}: at most 50 titles.")
    return [t.strip()[:300] for t in value if t.strip()]


def _baseline(get: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    answer = _text(get("baseline_answer"), f"{where}, baseline_answer")
    if answer:
        out["answer"] = answer
    sources = _titles(get("baseline_sources"), f"{where}, baseline_sources")
    if sources:
        out["sources"] = sources
    tasks = _titles(get("baseline_tasks"), f"{where}, baseline_tasks")
    if tasks:
        out["tasks"] = tasks
    score = _score(get("baseline_score"), f"{where}, baseline_score")
    if score is not None:
        out["score"] = score
    return out


def _record(get: Any, where: str, index: int) -> Record:
    key = _text(get("key"), f"{where}, key", 60) or str(index)
    return Record(
        key=key,
        title=_text(get("title"), f"{where}, title", 300),
        text=_text(get("text"), f"{where}, text"),
        expected_answer=_text(get("expected_answer"), f"{where}, expected_answer"),
        expected_sources=_titles(get("expected_sources"), f"{where}, expected_sources"),
        expected_tasks=_titles(get("expected_tasks"), f"{where}, expected_tasks"),
        expected_score=_score(get("expected_score"), f"{where}, expected_score"),
        baseline=_baseline(get, where),
    )


def _check_unique(records: list[Record]) -> list[Record]:
    seen: dict[str, int] = {}
    for n, r in enumerate(records, start=1):
        if r.key in seen:
            raise ImportProblem(f"item {n}: key {r.key!r} repeats item {seen[r.key]}.")
        seen[r.key] = n
    if len(records) > MAX_ITEMS:
        raise ImportProblem(f"{len(records)} items; at most {MAX_ITEMS} per import.")
    return records


def parse_complexity_report(doc: dict[str, Any], name: str) -> list[Record]:
    """Task Master's task-complexity-report*.json: every entry becomes a baseline score."""
    entries = doc.get("complexityAnalysis")
    if not isinstance(entries, list):
        raise ImportProblem(f"{name}: complexityAnalysis is missing or not a list.")
    records = []
    for n, entry in enumerate(entries):
        where = f"{name}: complexityAnalysis[{n}]"
        if not isinstance(entry, dict):
            raise ImportProblem(f"{where} is not an object.")
        if "taskId" not in entry:
            raise ImportProblem(f"{where}: taskId is missing.")
        if "complexityScore" not in entry:
            raise ImportProblem(f"{where}: complexityScore is missing.")
        score = _score(entry["complexityScore"], f"{where}.complexityScore")
        baseline: dict[str, Any] = {"score": score, "source": "task-complexity-report"}
        if isinstance(entry.get("recommendedSubtasks"), int):
            baseline["recommended_subtasks"] = entry["recommendedSubtasks"]
        for src, dst in (("reasoning", "reasoning"), ("expansionPrompt", "expansion_prompt")):
            if entry.get(src):
                baseline[dst] = _text(entry[src], f"{where}.{src}", 4000)
        title = _text(entry.get("taskTitle"), f"{where}.taskTitle", 300)
        records.append(
            Record(key=_text(entry["taskId"], f"{where}.taskId", 60), title=title, text=title, baseline=baseline)
        )
    return _check_unique(records)


def parse_json(data: bytes, name: str) -> list[Record]:
    text = _decode(data, name)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportProblem(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    if isinstance(doc, dict) and "complexityAnalysis" in doc:
        return parse_complexity_report(doc, name)
    items = doc.get("items") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ImportProblem(f'{name}: expected a list of items, or an object with an "items" list.')
    records = []
    for n, item in enumerate(items):
        where = f"{name}: items[{n}]"
        if not isinstance(item, dict):
            raise ImportProblem(f"{where} is not an object.")
        unknown = set(item) - CSV_COLUMNS - {"baseline"}
        if unknown:
            raise ImportProblem(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
        nested = item.get("baseline") or {}
        if not isinstance(nested, dict):
            raise ImportProblem(f"{where}.baseline is not an object.")
        flat = {**item, **{f"baseline_{k}": v for k, v in nested.items()}}
        records.append(_record(flat.get, where, n + 1))
    return _check_unique(records)


def parse_csv(data: bytes, name: str) -> list[Record]:
    text = _decode(data, name)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise ImportProblem(f"{name} is empty: the first row must name the columns.")
    unknown = set(header) - CSV_COLUMNS
    if unknown:
        raise ImportProblem(f"{name}, row 1: unknown column(s) {', '.join(sorted(unknown))}.")
    records = []
    try:
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise ImportProblem(f"{name}, row {n}: more cells than columns.")
            clean = {k.strip(): v for k, v in row.items() if k}
            records.append(_record(clean.get, f"{name}, row {n}", n - 1))
    except csv.Error as exc:
        raise ImportProblem(f"{name}, row {reader.line_num}: {exc}.") from None
    return _check_unique(records)


def parse_file(data: bytes, name: str) -> list[Record]:
    """JSON or CSV by content, never by the name the client sent."""
    if len(data) > MAX_BYTES:
        raise ImportProblem(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB.")
    what = sniff(data)
    if what != "text":
        raise ImportProblem(f"{name} is {what}; upload a .json or .csv file (or a task-complexity-report*.json).")
    text = data.decode("utf-8-sig")
    if looks_like_json(text):
        return parse_json(data, name)
    if "," in text.partition("\n")[0]:
        return parse_csv(data, name)
    raise ImportProblem(
        f"{name} is neither JSON nor CSV text; upload a .json or .csv file (or a task-complexity-report*.json)."
    )
