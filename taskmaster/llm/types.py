"""Plain data passed between callers, workers and the ledger (JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    queue_wait_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    tokens_per_s: float | None = None


@dataclass
class Completion:
    request_id: str
    model: str
    text: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    parsed: BaseModel | None = None
    cache_hit: bool = False
    worker: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parsed"] = self.parsed.model_dump() if self.parsed is not None else None
        return data


@dataclass
class CallContext:
    """Who is calling and why: everything the ledger needs beyond the call itself."""

    feature: str = "unknown"
    user_id: int | None = None
    team_id: int | None = None
    template_version: str = ""
    conversation: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
