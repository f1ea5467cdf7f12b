"""Chat completions: turn an OpenAI request into a runtime call and the result back into OpenAI JSON."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from taskmaster.api.errors import ApiError, bad_request
from taskmaster.api.schemas import ChatRequest, Message, Tool
from taskmaster.llm import (
    Cancelled,
    ContextOverflow,
    LLMError,
    LLMTimeout,
    ModelUnavailable,
    WorkerLost,
)
from taskmaster.llm.models import LLMModel, ModelKind
from taskmaster.llm.types import Usage

OWNER = "taskmaster-local"


@dataclass
class ToolPlan:
    """A forced tool call: decoding is constrained to the tool's parameters (or to a name+arguments union)."""

    tools: list[Tool]
    # One tool: the output *is* its arguments. Several ("required"): {"name": ..., "arguments": ...}.
    wrapped: bool


@dataclass
class ChatPlan:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    sampling: dict[str, Any]
    stream: bool
    include_usage: bool
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    tool: ToolPlan | None = None
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))


# --- request → plan -------------------------------------------------------------------


def _text_of(message: Message, index: int) -> str:
    content = message.content
    if content is None:
        if message.role == "assistant":
            return ""
        raise bad_request(
            f"messages[{index}].content is required for a {message.role} message.", param=f"messages[{index}].content"
        )
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in {"text", "input_text"} and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise bad_request(
                f"messages[{index}].content[{j}] has type {kind!r}; only text parts are supported by local models.",
                param=f"messages[{index}].content[{j}].type",
            )
    return "\n".join(texts)


def normalise_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Plain system/user/assistant turns every chat template understands.

    Tool traffic is folded into text: an assistant's tool calls become a line naming the
    call and its arguments, a tool result becomes a user turn that says what it answers.
    """
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        text = _text_of(message, i)
        role = message.role
        if role == "developer":
            role = "system"
        if role == "assistant" and message.tool_calls:
            calls = "\n".join(f"Called {c.function.name} with {c.function.arguments}" for c in message.tool_calls)
            text = f"{text}\n{calls}".strip()
        if role == "tool":
            role = "user"
            text = f"Result of tool call {message.tool_call_id or message.name or ''}:\n{text}".replace("  ", " ")
        out.append({"role": role, "content": text})
    return out


def _tool_plan(request: ChatRequest) -> ToolPlan | None:
    choice = request.tool_choice
    tools = request.tools or []
    if choice is None or (isinstance(choice, str) and choice in {"none", "auto"}):
        # "auto" leaves the choice to the model; the local models answer in text.
        return None
    if not tools:
        raise bad_request("tool_choice needs a non-empty 'tools' list.", param="tool_choice")
    if choice == "required":
        return ToolPlan(tools=tools, wrapped=len(tools) > 1)
    assert not isinstance(choice, str)
    named = [t for t in tools if t.function.name == choice.function.name]
    if not named:
        raise bad_request(
            f"tool_choice names {choice.function.name!r}, which is not in 'tools'.", param="tool_choice.function.name"
        )
    return ToolPlan(tools=named, wrapped=False)


def _parameters(tool: Tool) -> dict[str, Any]:
    return tool.function.parameters or {"type": "object", "properties": {}}


def tool_schema(plan: ToolPlan) -> dict[str, Any]:
    if not plan.wrapped:
        return _parameters(plan.tools[0])
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": _parameters(t)},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in plan.tools
        ]
    }


def _tool_instruction(plan: ToolPlan) -> dict[str, str]:
    lines = [f"- {t.function.name}: {t.function.description or 'no description'}" for t in plan.tools]
    if plan.wrapped:
        head = 'Call exactly one of these functions. Reply with JSON {"name": ..., "arguments": {...}}.'
    else:
        head = f"Call the function {plan.tools[0].function.name}. Reply with its JSON arguments only."
    return {"role": "system", "content": head + "\n" + "\n".join(lines)}


def build_plan(request: ChatRequest) -> ChatPlan:
    if request.n is not None and request.n > 1:
        raise bad_request("n > 1 is not supported; send separate requests.", param="n")
    if request.logprobs:
        raise bad_request("logprobs are not supported by this server.", param="logprobs")
    stop = request.stop
    if isinstance(stop, list) and len(stop) > 4:
        raise bad_request("At most 4 stop sequences are allowed.", param="stop")
    messages = normalise_messages(request.messages)
    plan = ChatPlan(
        model=request.model,
        messages=messages,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        sampling={
            k: v
            for k, v in {
                "temperature": request.temperature,
                "top_p": request.top_p,
                "stop": stop,
                "seed": request.seed,
                "presence_penalty": request.presence_penalty,
                "frequency_penalty": request.frequency_penalty,
            }.items()
            if v is not None
        },
        stream=request.stream,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
    )
    plan.tool = _tool_plan(request)
    if plan.tool is not None:
        plan.json_schema = tool_schema(plan.tool)
        plan.messages = [_tool_instruction(plan.tool), *plan.messages]
    elif request.response_format is not None and request.response_format.type != "text":
        fmt = request.response_format
        if fmt.type == "json_object":
            plan.json_mode = True
        else:
            if fmt.json_schema is None or fmt.json_schema.schema_ is None:
                raise bad_request(
                    "response_format json_schema needs json_schema.schema.", param="response_format.json_schema.schema"
                )
            # Client schemas may be unbounded (no maxLength/maxItems): max_tokens bounds the output.
            plan.json_schema = fmt.json_schema.schema_
    return plan


def max_tokens_param(request: ChatRequest) -> str:
    return "max_completion_tokens" if request.max_completion_tokens else "max_tokens"


def fit_max_tokens(plan: ChatPlan, model: LLMModel, param: str) -> int:
    """The max_tokens to run with: the client's (400 when it cannot fit the context) or a default."""
    if plan.max_tokens is None:
        return max(1, min(settings.API_DEFAULT_MAX_TOKENS, model.context_length - 1))
    if plan.max_tokens >= model.context_length:
        raise ApiError(
            400,
            f"{param}={plan.max_tokens} is beyond the context of {model.name} ({model.context_length} tokens, "
            f"prompt included); ask for at most {model.context_length - 1}.",
            param=param,
            code="context_length_exceeded",
        )
    return plan.max_tokens


def chat_model(name: str, models: list[LLMModel]) -> LLMModel:
    """The registry chat model ``name`` from the usable ones; 404 when unknown."""
    for model in models:
        if model.name == name:
            if model.kind != ModelKind.CHAT:
                raise bad_request(
                    f"{name} is an embedding model; use /v1/embeddings.", param="model", code="model_not_supported"
                )
            return model
    raise ApiError(
        404,
        f"The model '{name}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


# --- runtime errors → OpenAI errors --------------------------------------------------------


def api_error_for(exc: LLMError) -> ApiError:
    if isinstance(exc, ContextOverflow):
        return ApiError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, ModelUnavailable):
        return ApiError(503, str(exc), code="model_unavailable")
    if isinstance(exc, WorkerLost):
        return ApiError(503, f"{exc} Retry the request.", code="worker_lost")
    if isinstance(exc, LLMTimeout):
        return ApiError(504, str(exc), code="timeout")
    if isinstance(exc, Cancelled):
        return ApiError(500, "The generation was cancelled.", code="cancelled")
    return ApiError(500, f"The model failed: {exc}", code=exc.error_class)


# --- results → OpenAI JSON ------------------------------------------------------------------


_WRAPPED = re.compile(r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(.*)$', re.DOTALL)


def tool_call_of(plan: ToolPlan, text: str) -> dict[str, Any]:
    """The OpenAI tool call for constrained output ``text`` (arguments kept verbatim if cut off)."""
    if not plan.wrapped:
        name, arguments = plan.tools[0].function.name, text.strip()
    else:
        try:
            data = json.loads(text)
            name, arguments = str(data["name"]), json.dumps(data["arguments"], ensure_ascii=False)
        except (ValueError, KeyError, TypeError):
            match = _WRAPPED.match(text)
            # The grammar puts the name first, so a cut-off output still names its tool.
            name = match.group(1) if match else plan.tools[0].function.name
            arguments = match.group(2) if match else ""
    return {
        "id": "call_" + secrets.token_hex(12),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_json(
    plan: ChatPlan, *, model: str, text: str, finish_reason: str, usage: Usage, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if plan.tool is not None:
        message["content"] = None
        message["tool_calls"] = [tool_call_of(plan.tool, text)]
        finish_reason = "tool_calls" if finish_reason == "stop" else finish_reason
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage_json(usage),
        "system_fingerprint": OWNER,
        **(extra or {}),
    }


def chunk_json(
    plan: ChatPlan,
    *,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": model,
        "system_fingerprint": OWNER,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if plan.include_usage:
        chunk["usage"] = usage_json(usage) if usage is not None else None
    if extra:
        chunk.update(extra)
    return chunk
