"""Request bodies and query strings of the planning API (``/api/v1/``), validated strictly.

Unlike ``/v1`` (where SDKs send fields we ignore), a planning client that misspells a field
would silently change nothing, so unknown fields are refused with their name.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from django.http import HttpRequest, QueryDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskmaster.api.errors import ApiError, bad_request
from taskmaster.api.schemas import parse_json, read_body

StatusName = Literal["pending", "in-progress", "review", "done", "deferred", "cancelled", "blocked"]
PriorityName = Literal["critical", "high", "medium", "low"]
# Task Master writes task ids as integers and subtask refs as "3.2"; inside a subtask a bare
# integer means a sibling.
DepRef = int | str
MAX_TEXT = 20_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectIn(_In):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=MAX_TEXT)


class TagIn(_In):
    name: str = Field(min_length=1, max_length=50)
    description: str = Field(default="", max_length=500)
    copyFrom: str | None = Field(default=None, max_length=50)


class ItemFields(_In):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    details: str | None = Field(default=None, max_length=MAX_TEXT)
    testStrategy: str | None = Field(default=None, max_length=MAX_TEXT)
    priority: PriorityName | None = None
    status: StatusName | None = None

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, under the model's names."""
        names = {"testStrategy": "test_strategy"}
        sent = {k: v for k, v in self.model_dump(exclude_unset=True).items() if k in ItemFields.model_fields}
        for key, value in sent.items():
            if value is None:
                raise ApiError(
                    400, f"'{key}' cannot be null; leave it out to keep it.", param=key, code="invalid_value"
                )
        return {names.get(k, k): v for k, v in sent.items()}


class TaskIn(ItemFields):
    title: str = Field(min_length=1, max_length=300)
    dependencies: list[DepRef] = Field(default_factory=list, max_length=200)


class TaskPatch(ItemFields):
    # The version read with the task: when given, the update is refused (409) if someone saved since.
    version: int | None = Field(default=None, ge=1)


class StatusIn(_In):
    status: StatusName


class DependencyIn(_In):
    dependsOn: DepRef


class PrdIn(_In):
    title: str = Field(default="", max_length=200)
    text: str = Field(min_length=1, max_length=500_000)


class ParsePrdIn(_In):
    prdId: int | None = Field(default=None, ge=1)
    text: str | None = Field(default=None, min_length=1, max_length=500_000)
    title: str = Field(default="", max_length=200)
    numTasks: int | None = Field(default=None, ge=1, le=50)  # None: the model decides
    mode: Literal["append", "replace"] = "append"
    detail: Literal["short", "full"] = "short"


class ExpandIn(_In):
    id: int = Field(ge=1)
    numSubtasks: int | None = Field(default=None, ge=1, le=10)  # None: the report or the default
    prompt: str = Field(default="", max_length=4000)
    force: bool = False  # replace existing subtasks, as Task Master's --force
    detail: Literal["short", "full"] = "short"


class ExpandAllIn(_In):
    threshold: int | None = Field(default=None, ge=1, le=10)
    force: bool = False
    detail: Literal["short", "full"] = "short"


class AnalyzeIn(_In):
    ids: list[int] = Field(default_factory=list, max_length=500)  # empty: every unfinished task
    threshold: int | None = Field(default=None, ge=1, le=10)
    detail: Literal["short", "full"] = "short"


B = TypeVar("B", bound=BaseModel)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in {"int", "str"}:
            break  # pydantic names the union member it tried; the field is what matters
        else:
            out += ("." if out else "") + str(part)
    return out


def parse(model: type[B], request: HttpRequest) -> B:
    """The validated JSON body, or a 400 that names the field and what is wrong with it."""
    data = parse_json(read_body(request))
    if not isinstance(data, dict):
        raise bad_request(f"The request body must be a JSON object, not {type(data).__name__}.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(first.get("loc", ()))
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise ApiError(
                400, f"Unknown field '{where}'. Allowed fields: {allowed}.", param=where, code="unknown_field"
            ) from None
        if first["type"] == "missing":
            raise ApiError(400, f"Missing required field '{where}'.", param=where, code="missing_field") from None
        more = f" ({exc.error_count() - 1} more problem(s).)" if exc.error_count() > 1 else ""
        raise ApiError(
            400, f"Invalid value for '{where}': {first['msg']}.{more}", param=where, code="invalid_value"
        ) from None


def query(params: QueryDict, allowed: set[str]) -> dict[str, str]:
    """Query parameters, refusing unknown ones (a misspelt filter must not return everything)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ApiError(
            400,
            f"Unknown query parameter '{unknown[0]}'. Allowed: {', '.join(sorted(allowed))}.",
            param=unknown[0],
            code="unknown_field",
        )
    return {k: params.get(k, "") for k in allowed if k in params}
