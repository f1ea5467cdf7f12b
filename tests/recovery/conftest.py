"""Recovery tests: the handler registered and fault injection switched on (tests only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recovery import plans
from taskmaster.llm import client, set_recovery, set_router


@pytest.fixture(autouse=True)
def recovery_on(settings: Any) -> Iterator[None]:
    # Other suites (tests/llm) register their own handler and reset it to None afterwards.
    settings.FAULT_INJECTION = True
    settings.RECOVERY_BACKOFF_S = 0.2
    set_recovery(plans.recover)
    # Adaptive routing (analytics) would pick among the injected broken models at random and
    # caches rows for a few seconds across tests: these tests route by role defaults only.
    router = client._router
    set_router(None)
    yield
    set_router(router)
    set_recovery(plans.recover)
