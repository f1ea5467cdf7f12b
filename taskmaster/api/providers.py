"""Virtual models: ids answered by another app (the research app's ``research`` and
``research/<collection-slug>``) instead of a registry model.

The core never imports a feature app. An app registers a provider in its
``AppConfig.ready()``::

    from taskmaster.api.providers import register_virtual_models
    register_virtual_models(ResearchModels())

A provider lists the ids a user may call (``list_models``), claims the ids it answers
(``handles``; claimed ids shadow registry models of the same name) and answers a chat
request (``chat``). While streaming, ``request.on_text`` is set: call it with each
piece of text as it is produced. ``VirtualAnswer.extra`` becomes extra top-level fields
of the response (Perplexity-style ``citations`` and ``search_results``); in a stream
they ride on the final chunk (the one with ``finish_reason``) and on the usage chunk.
Every model call a provider makes must pass ``request.context`` (feature ``api``, the
caller's user and team) so it lands in the ledger as an API call. Raise
``VirtualModelNotFound`` for an id you claim but this user may not use (404), or a
``taskmaster.llm.LLMError`` for runtime failures (mapped like registry calls).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.contrib.auth.models import AbstractBaseUser

from taskmaster.llm import CallContext
from taskmaster.llm.types import Usage
from taskmaster.models import Team


class VirtualModelNotFound(Exception):
    """The provider claims the id, but it does not exist for this user (e.g. an unknown collection)."""


@dataclass
class VirtualChatRequest:
    model: str
    # Plain {"role": "system"|"user"|"assistant", "content": str} messages.
    messages: list[dict[str, Any]]
    max_tokens: int | None
    # temperature, top_p, stop, seed as sent by the client (None values dropped).
    sampling: dict[str, Any]
    user: AbstractBaseUser
    team: Team | None
    context: CallContext
    on_text: Callable[[str], Awaitable[None]] | None = None


@dataclass
class VirtualAnswer:
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VirtualModelProvider(Protocol):
    def handles(self, model: str) -> bool:
        """Whether this provider answers ``model`` (pure: no database)."""
        ...

    def list_models(self, *, user: AbstractBaseUser, team: Team | None) -> list[str]:
        """The ids this user may call with ``team`` as the acting team (sync; may query the database)."""
        ...

    async def chat(self, request: VirtualChatRequest) -> VirtualAnswer: ...


_providers: list[VirtualModelProvider] = []


def register_virtual_models(provider: VirtualModelProvider) -> None:
    if not isinstance(provider, VirtualModelProvider):
        raise TypeError(f"{provider!r} lacks handles/list_models/chat")
    if provider not in _providers:
        _providers.append(provider)


def unregister_virtual_models(provider: VirtualModelProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def provider_for(model: str) -> VirtualModelProvider | None:
    for provider in _providers:
        if provider.handles(model):
            return provider
    return None


def virtual_model_ids(*, user: AbstractBaseUser, team: Team | None) -> list[str]:
    ids: list[str] = []
    for provider in _providers:
        ids.extend(m for m in provider.list_models(user=user, team=team) if m not in ids)
    return ids
