"""Typed errors of the LLM runtime; recovery classifies failures by these classes."""

from __future__ import annotations


class LLMError(Exception):
    """Base class. ``error_class`` is what the ledger records."""

    error_class = "unknown"
    # The ledger row (LLMCall id) of the failed call, when the call got that far.
    request_id: str | None = None


class ModelUnavailable(LLMError):
    error_class = "model_unavailable"


class ModelFileError(LLMError):
    error_class = "model_file"


class ContextOverflow(LLMError):
    error_class = "context_overflow"


class OutputTruncated(LLMError):
    """Generation stopped at max_tokens (finish_reason == "length") before the output was complete."""

    error_class = "truncated"

    def __init__(self, message: str, *, text: str = "", completion_tokens: int = 0) -> None:
        super().__init__(message)
        self.text = text
        self.completion_tokens = completion_tokens


class SchemaValidationError(LLMError):
    error_class = "schema_validation"

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class WorkerLost(LLMError):
    error_class = "worker_lost"


class LLMTimeout(LLMError):
    error_class = "timeout"


class Cancelled(LLMError):
    error_class = "cancelled"


class OutOfMemory(LLMError):
    error_class = "out_of_memory"


class BrokerUnavailable(LLMError):
    """Redis (the queue and the reply channel) could not be reached."""

    error_class = "broker_unavailable"


ERROR_CLASSES: dict[str, type[LLMError]] = {
    cls.error_class: cls
    for cls in (
        LLMError,
        ModelUnavailable,
        ModelFileError,
        ContextOverflow,
        OutputTruncated,
        SchemaValidationError,
        WorkerLost,
        LLMTimeout,
        Cancelled,
        OutOfMemory,
        BrokerUnavailable,
    )
}
