from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import Workers


def test_readyz_is_cheap_and_ok(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_healthz_all_ok_with_workers_and_models(client: Client, llm: Workers) -> None:
    response = client.get("/healthz")
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "celery", "models"}
    assert all(check["ok"] for check in body["checks"].values())


# Transactional: inside a test transaction Django would not reconnect to the broken host.
@pytest.mark.django_db(transaction=True)
def test_healthz_names_the_database_when_it_is_down(client: Client) -> None:
    real_host = connection.settings_dict["HOST"]
    connection.close()
    connection.settings_dict["HOST"] = "/nonexistent-socket-dir"
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["HOST"] = real_host
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failing"]
    assert body["checks"]["database"]["ok"] is False
    assert "nonexistent-socket-dir" in body["checks"]["database"]["error"]
    assert body["checks"]["redis"]["ok"] is True
