"""Sign-in, and its throttling after repeated failures."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.conftest import Trio


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


def _login(client: Client, username: str, password: str, ip: str = "10.0.0.1") -> str:
    response = client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)
    return response.content.decode() if response.status_code == 200 else f"redirect {response['Location']}"


def test_right_password_signs_in(client: Client, trio: Trio) -> None:
    assert _login(client, "owner", "pw-owner-123") == "redirect /"


def test_five_failures_lock_the_account_even_with_the_right_password(client: Client, trio: Trio) -> None:
    for _ in range(5):
        assert "Please enter a correct username and password" in _login(client, "owner", "wrong")
    page = _login(client, "owner", "pw-owner-123")
    assert "Too many failed sign-ins. Wait 15 minutes" in page
    # Another account from another address is unaffected.
    assert _login(client, "member", "pw-member-123", ip="10.0.0.2") == "redirect /"


def test_one_address_trying_many_accounts_is_locked(client: Client, trio: Trio) -> None:
    for name in ("a", "b", "c", "d", "e"):
        _login(client, name, "wrong", ip="10.9.9.9")
    assert "Too many failed sign-ins" in _login(client, "owner", "pw-owner-123", ip="10.9.9.9")
    assert _login(client, "owner", "pw-owner-123", ip="10.0.0.3") == "redirect /"
