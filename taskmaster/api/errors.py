"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with the right status."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse, JsonResponse

# The ``type`` OpenAI uses for each status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
    504: "server_error",
}


class ApiError(Exception):
    """Raise anywhere below an API view; the view answers with the matching error JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> HttpResponse:
        response = JsonResponse(self.payload(), status=self.status)
        for key, value in self.headers.items():
            response[key] = value
        return response


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    return ApiError(status, message, code=code, param=param, headers=headers).response()


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def sse_error(error: ApiError) -> bytes:
    """An error inside an already-started event stream (the openai SDKs raise on it)."""
    return b"data: " + json.dumps(error.payload()).encode() + b"\n\n"
