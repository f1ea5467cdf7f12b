"""The /v1 endpoints. Thin: parse, authorise (``api_view``), call the runtime, shape OpenAI JSON."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import numpy as np
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from taskmaster.api import limits
from taskmaster.api.auth import ApiCaller, api_view
from taskmaster.api.chat import (
    OWNER,
    ChatPlan,
    api_error_for,
    build_plan,
    chat_model,
    completion_json,
    fit_max_tokens,
    max_tokens_param,
)
from taskmaster.api.errors import ApiError, bad_request
from taskmaster.api.providers import (
    VirtualAnswer,
    VirtualChatRequest,
    VirtualModelNotFound,
    VirtualModelProvider,
    provider_for,
    virtual_model_ids,
)
from taskmaster.api.schemas import ChatRequest, EmbeddingRequest, parse_body, read_body
from taskmaster.api.selectors import api_registry_models
from taskmaster.api.streaming import Outcome, chat_events
from taskmaster.llm import CallContext, LLMError, aembed, agenerate
from taskmaster.llm.models import LLMCall, LLMModel, ModelKind
from taskmaster.llm.types import Usage

MAX_EMBEDDING_INPUTS = 2048


def _require(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise ApiError(405, f"Use {method} for {request.path}.", code="method_not_allowed")


def _context(caller: ApiCaller, endpoint: str, **extra: Any) -> CallContext:
    return CallContext(
        feature="api",
        user_id=caller.user_id,
        team_id=caller.team_id,
        metadata={"endpoint": endpoint, "token": caller.token.prefix, **extra},
    )


async def _usable_models() -> list[LLMModel]:
    return await sync_to_async(lambda: list(api_registry_models()))()


def _model_json(model_id: str, created: int, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER, **extra}


async def _all_models(caller: ApiCaller) -> list[dict[str, Any]]:
    registry = [
        _model_json(m.name, int(m.created_at.timestamp()), kind=m.kind, context_length=m.context_length)
        for m in await _usable_models()
    ]
    virtual_ids = await sync_to_async(virtual_model_ids)(user=caller.user, team=caller.team)
    shadowed = {m for m in virtual_ids}
    return [m for m in registry if m["id"] not in shadowed] + [
        _model_json(mid, 0, kind="virtual") for mid in virtual_ids
    ]


@api_view
async def models_list(request: HttpRequest) -> HttpResponse:
    _require(request, "GET")
    return JsonResponse({"object": "list", "data": await _all_models(request.api)})  # type: ignore[attr-defined]


@api_view
async def model_detail(request: HttpRequest, model: str) -> HttpResponse:
    _require(request, "GET")
    for item in await _all_models(request.api):  # type: ignore[attr-defined]
        if item["id"] == model:
            return JsonResponse(item)
    raise ApiError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


# --- chat completions ------------------------------------------------------------------------


def _stream_response(events: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _charge(caller: ApiCaller, usage: Usage) -> None:
    await sync_to_async(limits.add_tokens)(caller.user_id, usage.total_tokens)


@api_view
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    _require(request, "POST")
    caller: ApiCaller = request.api  # type: ignore[attr-defined]
    body = parse_body(ChatRequest, read_body(request))
    plan = build_plan(body)
    await sync_to_async(limits.check_quota)(caller.user_id, caller.limits)
    provider = provider_for(plan.model)
    if provider is not None:
        return await _virtual_chat(plan, provider, caller)
    model = chat_model(plan.model, await _usable_models())
    max_tokens = fit_max_tokens(plan, model, max_tokens_param(body))
    ctx = _context(caller, "chat.completions", stream=plan.stream)

    async def run(on_text: Any) -> Outcome:
        async def on_event(event: dict[str, Any]) -> None:
            if on_text is not None and event.get("type") == "llm.tokens":
                await on_text(event.get("text", ""))

        completion = await agenerate(
            plan.messages,
            model=model.name,
            json_schema_dict=plan.json_schema,
            json_mode=plan.json_mode,
            max_tokens=max_tokens,
            on_event=on_event,
            context=ctx,
            **plan.sampling,
        )
        return completion.text, completion.finish_reason, completion.usage, {}

    if plan.stream:
        return _stream_response(chat_events(plan, model=model.name, run=run, on_finish=lambda u: _charge(caller, u)))
    try:
        text, finish_reason, usage, _ = await run(None)
    except LLMError as exc:
        raise api_error_for(exc) from None
    await _charge(caller, usage)
    return JsonResponse(completion_json(plan, model=model.name, text=text, finish_reason=finish_reason, usage=usage))


async def _virtual_chat(plan: ChatPlan, provider: VirtualModelProvider, caller: ApiCaller) -> HttpResponseBase:
    if plan.tool is not None or plan.json_schema is not None or plan.json_mode:
        raise bad_request(
            f"{plan.model} answers in text: tools and response_format are not supported for it.", param="model"
        )

    def not_found() -> ApiError:
        return ApiError(
            404,
            f"The model '{plan.model}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    # Checked before a stream starts, so an unknown id is a plain 404 rather than an SSE error frame.
    if plan.model not in await sync_to_async(provider.list_models)(user=caller.user, team=caller.team):
        raise not_found()
    ctx = _context(caller, "chat.completions", stream=plan.stream, virtual_model=plan.model)

    async def run(on_text: Any) -> Outcome:
        answer: VirtualAnswer = await provider.chat(
            VirtualChatRequest(
                model=plan.model,
                messages=plan.messages,
                max_tokens=plan.max_tokens,
                sampling=dict(plan.sampling),
                user=caller.user,
                team=caller.team,
                context=ctx,
                on_text=on_text,
            )
        )
        return answer.text, answer.finish_reason, answer.usage, answer.extra

    if plan.stream:

        async def guarded(on_text: Any) -> Outcome:
            try:
                return await run(on_text)
            except VirtualModelNotFound:
                raise not_found() from None

        return _stream_response(
            chat_events(plan, model=plan.model, run=guarded, on_finish=lambda u: _charge(caller, u))
        )
    try:
        text, finish_reason, usage, extra = await run(None)
    except VirtualModelNotFound:
        raise not_found() from None
    except LLMError as exc:
        raise api_error_for(exc) from None
    await _charge(caller, usage)
    return JsonResponse(
        completion_json(plan, model=plan.model, text=text, finish_reason=finish_reason, usage=usage, extra=extra)
    )


# --- embeddings ------------------------------------------------------------------------------


def _embedding_inputs(body: EmbeddingRequest) -> list[str]:
    raw = body.input
    if isinstance(raw, str):
        items: list[Any] = [raw]
    else:
        items = list(raw)
    if not items:
        raise bad_request("'input' is empty; send a string or a list of strings.", param="input")
    if any(not isinstance(item, str) for item in items):
        raise bad_request("Token-id input is not supported; send text.", param="input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise bad_request(f"At most {MAX_EMBEDDING_INPUTS} inputs per request.", param="input")
    for i, item in enumerate(items):
        if not item.strip():
            raise bad_request(f"input[{i}] is empty.", param=f"input[{i}]")
    return items


def _embedding_model(name: str, models: list[LLMModel]) -> LLMModel:
    for model in models:
        if model.name == name:
            if model.kind != ModelKind.EMBEDDING:
                raise bad_request(
                    f"{name} is a chat model; use an embedding model for /v1/embeddings.",
                    param="model",
                    code="model_not_supported",
                )
            return model
    raise ApiError(
        404,
        f"The model '{name}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


def _prompt_tokens(marker: str) -> int:
    row = LLMCall.objects.filter(metadata__api_call=marker).values_list("prompt_tokens", flat=True).first()
    return int(row or 0)


@api_view
async def embeddings(request: HttpRequest) -> HttpResponse:
    _require(request, "POST")
    caller: ApiCaller = request.api  # type: ignore[attr-defined]
    body = parse_body(EmbeddingRequest, read_body(request))
    texts = _embedding_inputs(body)
    await sync_to_async(limits.check_quota)(caller.user_id, caller.limits)
    model = _embedding_model(body.model, await _usable_models())
    # aembed returns vectors only; the marker finds the ledger row for the token count.
    marker = uuid.uuid4().hex
    try:
        vectors = await aembed(texts, model=model.name, context=_context(caller, "embeddings", api_call=marker))
    except LLMError as exc:
        raise api_error_for(exc) from None
    if body.dimensions is not None and vectors and body.dimensions != len(vectors[0]):
        raise bad_request(
            f"{model.name} has {len(vectors[0])} dimensions; it cannot return {body.dimensions}.", param="dimensions"
        )
    prompt_tokens = await sync_to_async(_prompt_tokens)(marker)
    await _charge(caller, Usage(prompt_tokens=prompt_tokens))
    return JsonResponse(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "model": model.name,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )
