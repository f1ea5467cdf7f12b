"""Request bodies of the /v1 endpoints, validated strictly (a string is not a number)."""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskmaster.api.errors import ApiError, bad_request


class _Body(BaseModel):
    # Unknown fields (user, logit_bias, parallel_tool_calls, ...) are accepted and ignored,
    # as OpenAI-compatible servers do; SDKs send several of them by default.
    model_config = ConfigDict(extra="ignore")


class ToolCallFunction(_Body):
    name: str = Field(max_length=64)
    arguments: str = ""


class ToolCall(_Body):
    id: str = ""
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Body):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionDef


class ToolName(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: ToolName


class JsonSchemaFormat(_Body):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None


class EmbeddingRequest(_Body):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)


B = TypeVar("B", bound=BaseModel)


def read_body(request: HttpRequest, limit: int | None = None) -> bytes:
    """The request body, or a 400 naming the limit (``API_MAX_BODY_BYTES`` unless given)."""
    limit = limit or settings.API_MAX_BODY_BYTES
    too_big = bad_request(f"The request body is larger than the limit of {limit} bytes.", code="request_too_large")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise bad_request("Content-Length is not a number.") from None
    if declared > limit:
        raise too_big
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(body) > limit:
        raise too_big
    return body


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise bad_request("The request body is not UTF-8 text.", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            code="invalid_json",
        ) from None


def parse_body(model: type[B], raw: bytes) -> B:
    """The validated body, or a 400 naming the first wrong field and why."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise bad_request(f"The request body must be a JSON object, not {type(data).__name__}.", code="invalid_json")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        # Union members report each alternative; the path up to the first member is what matters.
        param = _param(first.get("loc", ()))
        message = f"Invalid value for '{param or loc}': {first.get('msg')}."
        if first.get("type") == "missing":
            message = f"Missing required parameter: '{param or loc}'."
        if exc.error_count() > 1:
            message += f" ({exc.error_count() - 1} more problem(s).)"
        raise ApiError(400, message, param=param or None, code="invalid_value") from None


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _param(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        text = str(item)
        # Pydantic adds the union member it tried ("str", "list[str]", "NamedToolChoice") to the path.
        if isinstance(item, str) and (text in _TYPE_TAGS or "[" in text or "-" in text or text[:1].isupper()):
            break
        parts.append(f"[{text}]" if isinstance(item, int) else text)
    return ".".join(parts).replace(".[", "[")
