"""Fixtures of the API tests: tokens for the trio and OpenAI clients against live daphne."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from taskmaster.api.services import api_token_create
from tests.conftest import Trio


@pytest.fixture
def tokens(trio: Trio) -> dict[str, str]:
    """One secret per trio user: {"owner": "tml_...", "member": ..., "outsider": ...}."""
    return {
        who: api_token_create(user=getattr(trio, who), name=f"{who} token")[1]
        for who in ("owner", "member", "outsider")
    }


@pytest.fixture
def client_for(live_url: str) -> Callable[..., openai.OpenAI]:
    def make(secret: str, **headers: Any) -> openai.OpenAI:
        # max_retries=0: a 429 or 5xx must surface, not be retried away.
        return openai.OpenAI(
            base_url=f"{live_url}/v1", api_key=secret, max_retries=0, timeout=120, default_headers=headers or None
        )

    return make
