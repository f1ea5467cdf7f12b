"""Task Master's file formats, read and written as plain data (no database).

``tasks.json`` comes tagged (``{"master": {"tasks": [...], "metadata": {...}}}``) or in
the older flat form (``{"tasks": [...]}``). Dependencies become canonical refs ("3",
"3.2"); in a subtask a bare integer means a sibling, as in Task Master. Fields we do
not model are kept in the item's metadata together with the original key order, so
an export writes back what was read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from planning.models import Priority, Status

TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
REF = re.compile(r"^[1-9][0-9]*(\.[1-9][0-9]*)?$")
KEYS_META = "_tm_keys"
DEPS_META = "_tm_deps"  # the file's dependency order (the database keeps a set)
# PostgreSQL's jsonb reorders object keys; the file's text of unknown fields keeps their order.
RAW_META = "_tm_raw"
PRIVATE = (KEYS_META, DEPS_META, RAW_META)
TASK_KEYS = ("id", "title", "description", "details", "testStrategy", "status", "priority", "dependencies", "subtasks")
SUB_KEYS = ("id", "title", "description", "details", "testStrategy", "status", "priority", "dependencies")
TEXT = {"title": "title", "description": "description", "details": "details", "testStrategy": "test_strategy"}
MAX_ERRORS = 10


class FormatError(ValueError):
    """Every problem found, each naming its place in the file, e.g. ``master.tasks[3].dependencies[0]``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        more = "" if len(errors) <= MAX_ERRORS else f" (and {len(errors) - MAX_ERRORS} more)"
        super().__init__("; ".join(errors[:MAX_ERRORS]) + more)


@dataclass
class Item:
    number: int
    fields: dict[str, Any]
    dependencies: list[str]
    metadata: dict[str, Any]
    subtasks: list[Item] = field(default_factory=list)


@dataclass
class TagData:
    name: str
    metadata: dict[str, Any]
    tasks: list[Item]


@dataclass
class ComplexityEntry:
    task_id: int
    title: str
    score: int
    recommended_subtasks: int
    expansion_prompt: str
    reasoning: str


def loads(raw: bytes | str) -> Any:
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise FormatError([f"$: the file is not UTF-8 text (byte {exc.start})"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError([f"$: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number"
    )


class _Reader:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    def item(self, obj: Any, path: str, parent: int | None) -> Item | None:
        if not isinstance(obj, dict):
            self.err(path, f"expected a task object, got {_type(obj)}")
            return None
        ident = obj.get("id")
        if isinstance(ident, str) and ident.isdigit():
            ident = int(ident)
        if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
            self.err(f"{path}.id", f"expected a positive integer id, got {json.dumps(ident)}")
            ident = 0
        fields: dict[str, Any] = {}
        title = obj.get("title")
        if not isinstance(title, str) or not title.strip():
            self.err(f"{path}.title", "expected a non-empty string" + ("" if "title" in obj else " (missing)"))
        for key, name in TEXT.items():
            value = obj.get(key, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                self.err(f"{path}.{key}", f"expected a string, got {_type(value)}")
                value = ""
            fields[name] = value
        status = obj.get("status", Status.PENDING.value)
        if status not in Status.values:
            self.err(
                f"{path}.status", f"unknown status {json.dumps(status)}; expected one of {', '.join(Status.values)}"
            )
        fields["status"] = status
        priority = obj.get("priority", Priority.MEDIUM.value)
        if priority not in Priority.values:
            self.err(
                f"{path}.priority",
                f"unknown priority {json.dumps(priority)}; expected one of {', '.join(Priority.values)}",
            )
        fields["priority"] = priority
        deps = obj.get("dependencies", [])
        refs: list[str] = []
        if not isinstance(deps, list):
            self.err(f"{path}.dependencies", f"expected a list, got {_type(deps)}")
            deps = []
        for i, dep in enumerate(deps):
            ref = self.ref(dep, parent if parent is not None else None)
            if ref is None:
                self.err(
                    f"{path}.dependencies[{i}]",
                    f'expected a task id (integer) or a subtask ref like "3.2", got {json.dumps(dep)}',
                )
            else:
                refs.append(ref)
        known = SUB_KEYS if parent is not None else TASK_KEYS
        metadata = {k: v for k, v in obj.items() if k not in known}
        metadata[RAW_META] = json.dumps(metadata)
        metadata[KEYS_META] = list(obj.keys())
        metadata[DEPS_META] = refs
        item = Item(number=ident, fields=fields, dependencies=refs, metadata=metadata)
        if parent is None:
            subs = obj.get("subtasks", [])
            if not isinstance(subs, list):
                self.err(f"{path}.subtasks", f"expected a list, got {_type(subs)}")
                subs = []
            seen: set[int] = set()
            for i, sub in enumerate(subs):
                parsed = self.item(sub, f"{path}.subtasks[{i}]", ident)
                if parsed is None:
                    continue
                if parsed.number in seen and parsed.number:
                    self.err(f"{path}.subtasks[{i}].id", f"duplicate subtask id {parsed.number}")
                seen.add(parsed.number)
                item.subtasks.append(parsed)
        return item

    @staticmethod
    def ref(dep: Any, parent: int | None) -> str | None:
        if isinstance(dep, bool):
            return None
        if isinstance(dep, int):
            if dep < 1:
                return None
            return f"{parent}.{dep}" if parent is not None else str(dep)
        if isinstance(dep, str) and REF.match(dep.strip()):
            return dep.strip()
        return None

    def tag(self, name: str, obj: Any, path: str) -> TagData | None:
        if not isinstance(obj, dict):
            self.err(path, f"expected an object with a tasks list, got {_type(obj)}")
            return None
        tasks = obj.get("tasks")
        if not isinstance(tasks, list):
            self.err(f"{path}.tasks", "missing" if "tasks" not in obj else f"expected a list, got {_type(tasks)}")
            return None
        metadata = obj.get("metadata", {})
        if not isinstance(metadata, dict):
            self.err(f"{path}.metadata", f"expected an object, got {_type(metadata)}")
            metadata = {}
        extra = {k: v for k, v in obj.items() if k not in {"tasks", "metadata"}}
        if extra:
            metadata = {**metadata, "_tm_tag_extra": extra}
        metadata = {**metadata, RAW_META: json.dumps(metadata)}
        items: list[Item] = []
        seen: set[int] = set()
        for i, raw in enumerate(tasks):
            item = self.item(raw, f"{path}.tasks[{i}]", None)
            if item is None:
                continue
            if item.number in seen and item.number:
                self.err(f"{path}.tasks[{i}].id", f"duplicate task id {item.number}")
            seen.add(item.number)
            items.append(item)
        return TagData(name=name, metadata=metadata, tasks=items)


def parse_tasks(data: Any, *, flat_tag: str = "master") -> list[TagData]:
    """Validate a whole tasks.json; raise FormatError listing every problem, or return its tags."""
    reader = _Reader()
    tags: list[TagData] = []
    if not isinstance(data, dict):
        raise FormatError([f'$: expected an object like {{"master": {{"tasks": [...]}}}}, got {_type(data)}'])
    if isinstance(data.get("tasks"), list):
        meta = data.get("meta", data.get("metadata", {}))
        parsed = reader.tag(flat_tag, {"tasks": data["tasks"], "metadata": meta if isinstance(meta, dict) else {}}, "$")
        if parsed is not None:
            parsed.metadata = {**parsed.metadata, "_tm_flat": True}
            tags.append(parsed)
    else:
        if not data:
            raise FormatError(["$: the file holds no tags"])
        for name, obj in data.items():
            if not TAG_NAME.match(name):
                reader.err(json.dumps(name), "tag names use 1 to 50 letters, digits, dots, dashes or underscores")
                continue
            parsed = reader.tag(name, obj, name)
            if parsed is not None:
                tags.append(parsed)
    if reader.errors:
        raise FormatError(reader.errors)
    return tags


def parse_complexity(data: Any) -> tuple[dict[str, Any], list[ComplexityEntry]]:
    reader = _Reader()
    if not isinstance(data, dict):
        raise FormatError([f"$: expected an object with meta and complexityAnalysis, got {_type(data)}"])
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        reader.err("meta", f"expected an object, got {_type(meta)}")
        meta = {}
    entries_raw = data.get("complexityAnalysis")
    if not isinstance(entries_raw, list):
        raise FormatError(["complexityAnalysis: " + ("missing" if entries_raw is None else "expected a list")])
    entries: list[ComplexityEntry] = []
    for i, e in enumerate(entries_raw):
        path = f"complexityAnalysis[{i}]"
        if not isinstance(e, dict):
            reader.err(path, f"expected an object, got {_type(e)}")
            continue
        task_id, score, rec = e.get("taskId"), e.get("complexityScore"), e.get("recommendedSubtasks", 0)
        if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
            reader.err(f"{path}.taskId", f"expected a positive integer, got {json.dumps(task_id)}")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 1 <= score <= 10:
            reader.err(f"{path}.complexityScore", f"expected a number from 1 to 10, got {json.dumps(score)}")
        if isinstance(rec, bool) or not isinstance(rec, int) or not 0 <= rec <= 100:
            reader.err(f"{path}.recommendedSubtasks", f"expected an integer from 0 to 100, got {json.dumps(rec)}")
        texts = {}
        for key in ("taskTitle", "expansionPrompt", "reasoning"):
            value = e.get(key, "")
            if not isinstance(value, str):
                reader.err(f"{path}.{key}", f"expected a string, got {_type(value)}")
                value = ""
            texts[key] = value
        if not reader.errors:
            entries.append(
                ComplexityEntry(
                    task_id=int(task_id or 0),
                    title=texts["taskTitle"],
                    score=round(float(score or 0)),
                    recommended_subtasks=int(rec),
                    expansion_prompt=texts["expansionPrompt"],
                    reasoning=texts["reasoning"],
                )
            )
    threshold = meta.get("thresholdScore", 5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 1 <= threshold <= 10:
        reader.err("meta.thresholdScore", f"expected a number from 1 to 10, got {json.dumps(threshold)}")
    if reader.errors:
        raise FormatError(reader.errors)
    return meta, entries


# --- writing -------------------------------------------------------------------------------


def _dep_out(ref: str, parent: int | None) -> int | str:
    p, dot, s = ref.partition(".")
    if parent is None:
        return int(p) if not dot and p.isdigit() else ref
    if dot and p == str(parent) and s.isdigit():
        return int(s)
    return ref


def item_out(item: dict[str, Any], parent: int | None) -> dict[str, Any]:
    """One task (or subtask) of a snapshot in Task Master's shape, original key order first."""
    meta = dict(item.get("metadata") or {})
    order = meta.pop(KEYS_META, None)
    file_order = meta.pop(DEPS_META, None)
    meta = _ordered(meta)
    deps = list(item["dependencies"])
    if isinstance(file_order, list) and sorted(file_order) == sorted(deps):
        deps = file_order
    values: dict[str, Any] = {
        "id": item["number"],
        "title": item["title"],
        "description": item["description"],
        "details": item["details"],
        "testStrategy": item["test_strategy"],
        "status": item["status"],
        "priority": item["priority"],
        "dependencies": [_dep_out(d, parent) for d in deps],
    }
    if parent is None:
        values["subtasks"] = [item_out(s, item["number"]) for s in item.get("subtasks", [])]
    defaults = {
        "description": "",
        "details": "",
        "testStrategy": "",
        "priority": "medium",
        "dependencies": [],
        "subtasks": [],
        "status": "pending",
    }
    keys = list(order) if isinstance(order, list) else list(TASK_KEYS if parent is None else SUB_KEYS)
    # A field absent from the original file stays absent unless it has been given a value since.
    keys += [k for k in values if k not in keys and values[k] != defaults.get(k)]
    out: dict[str, Any] = {}
    for key in keys:
        if key in values:
            out[key] = values[key]
        elif key in meta:
            out[key] = meta.pop(key)
    out.update(meta)
    return out


def _ordered(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without private keys, each value in the file's key order when it is unchanged."""
    raw = meta.pop(RAW_META, None)
    meta = {k: v for k, v in meta.items() if k not in PRIVATE}
    try:
        original = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        original = {}
    ordered = {k: original[k] for k in original if k in meta and original[k] == meta[k]}
    return {k: ordered.get(k, meta[k]) for k in (list(ordered) + [k for k in meta if k not in ordered])}


def tag_out(snap: dict[str, Any]) -> dict[str, Any]:
    full = _ordered(dict(snap.get("metadata") or {}))
    meta = {k: v for k, v in full.items() if k not in {"_tm_flat", "_tm_tag_extra"}}
    out: dict[str, Any] = {"tasks": [item_out(t, None) for t in snap["tasks"]], "metadata": meta}
    out.update(full.get("_tm_tag_extra", {}))
    return out


def tasks_file(snaps: list[dict[str, Any]], *, flat: bool = False) -> dict[str, Any]:
    if flat:
        if len(snaps) != 1:
            raise ValueError("the flat format holds exactly one tag")
        body = tag_out(snaps[0])
        return {"meta": body["metadata"], "tasks": body["tasks"]} if body["metadata"] else {"tasks": body["tasks"]}
    return {s["name"]: tag_out(s) for s in snaps}
