"""Schemas for constrained decoding: pydantic models in, bounded JSON Schema out.

Every array and string must be bounded (maxItems / maxLength / enum): a small model
under an unbounded grammar can loop until max_tokens, so an unbounded schema is a
programming error, caught when the call is made rather than in production.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from taskmaster.llm.errors import SchemaValidationError


class UnboundedSchema(ValueError):
    pass


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs[ref.removeprefix("#/$defs/")])
    return node


def unbounded_paths(schema: dict[str, Any]) -> list[str]:
    defs = schema.get("$defs", {})
    found: list[str] = []
    seen: set[int] = set()

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        node = _resolve(node, defs)
        if id(node) in seen:
            return
        types = node.get("type")
        types = types if isinstance(types, list) else [types]
        if "string" in types and "enum" not in node and "const" not in node and "maxLength" not in node:
            found.append(f"{path} (string without maxLength)")
        if "array" in types:
            if "maxItems" not in node:
                found.append(f"{path} (array without maxItems)")
            walk(node.get("items"), f"{path}[]")
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{key}")
        for key in ("anyOf", "oneOf", "allOf"):
            for i, sub in enumerate(node.get(key) or []):
                walk(sub, f"{path}<{key}{i}>")

    walk(schema, "$")
    return found


# llama.cpp's JSON-schema grammar ignores an integer's minimum/maximum (seen: priority 0
# under ge=1 in 2 of 50 runs); an enum it does enforce. Ranges up to this size become enums.
_MAX_INT_ENUM = 64


def _enumerate_small_int_ranges(node: Any) -> None:
    if isinstance(node, dict):
        low, high = node.get("minimum"), node.get("maximum")
        if (
            node.get("type") == "integer"
            and "enum" not in node
            and isinstance(low, int)
            and isinstance(high, int)
            and 0 <= high - low < _MAX_INT_ENUM
        ):
            node["enum"] = list(range(low, high + 1))
        for value in node.values():
            _enumerate_small_int_ranges(value)
    elif isinstance(node, list):
        for value in node:
            _enumerate_small_int_ranges(value)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    problems = unbounded_paths(schema)
    if problems:
        raise UnboundedSchema(f"{model.__name__} has unbounded fields: {', '.join(problems)}")
    _enumerate_small_int_ranges(schema)
    return schema


def validate(model: type[BaseModel], text: str) -> BaseModel:
    try:
        # llama.cpp's JSON grammar lets raw control characters (a newline) into strings,
        # which strict JSON forbids; the non-strict parser accepts them as the text they are.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise SchemaValidationError(
            f"{model.__name__}: output is not JSON ({exc.msg} at {exc.pos})", text=text
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "$"
        raise SchemaValidationError(
            f"{model.__name__}: {exc.error_count()} validation error(s); first at {where}: {first.get('msg')}",
            text=text,
        ) from None
