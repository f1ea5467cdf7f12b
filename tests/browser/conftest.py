from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_playwright() -> None:
    # Playwright's sync API keeps an event loop running in the main thread for the rest of
    # the session, which makes Django refuse plain ORM calls (test data, the flush after a
    # transactional test). Browser tests are sorted last and touch the ORM only from the
    # test thread, so the check is lifted from the first browser test on.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
