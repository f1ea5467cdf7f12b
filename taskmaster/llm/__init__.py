"""The one way to call a model.

    generate(messages, *, role="main", schema=None, max_tokens=256, stream_to=None, **sampling) -> Completion
    embed(texts, *, role="embedding") -> list[list[float]]

and their async counterparts ``agenerate``/``aembed``. Calls are enqueued on the
chosen model's Celery queue and run in an inference worker; the caller awaits the
result over the channel layer. ``stream_to`` names an extra channel group that
receives the token batches (``llm.tokens`` events) as well. With ``schema`` (a
pydantic model whose arrays and strings are bounded) decoding is grammar-constrained
and ``Completion.parsed`` holds the validated object; a cut-off or invalid output
raises ``OutputTruncated`` / ``SchemaValidationError``.

Feature code imports from here and never imports ``llama_cpp``.
"""

from taskmaster.llm.client import (
    RecoveryAttempt,
    aembed,
    agenerate,
    cancel,
    embed,
    generate,
    set_recovery,
    set_router,
)
from taskmaster.llm.errors import (
    Cancelled,
    ContextOverflow,
    LLMError,
    LLMTimeout,
    ModelFileError,
    ModelUnavailable,
    OutputTruncated,
    SchemaValidationError,
    WorkerLost,
)
from taskmaster.llm.types import CallContext, Completion

__all__ = [
    "CallContext",
    "Cancelled",
    "Completion",
    "ContextOverflow",
    "LLMError",
    "LLMTimeout",
    "ModelFileError",
    "ModelUnavailable",
    "OutputTruncated",
    "RecoveryAttempt",
    "SchemaValidationError",
    "WorkerLost",
    "aembed",
    "agenerate",
    "cancel",
    "embed",
    "generate",
    "set_recovery",
    "set_router",
]
