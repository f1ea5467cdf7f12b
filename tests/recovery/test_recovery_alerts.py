"""Alerting: e-mail through Django's mail backend and a webhook POST, rate-limited per fingerprint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from recovery import services
from recovery.models import AlertChannel, AlertSent, Cause, Incident, Severity
from tests.conftest import Trio

pytestmark = pytest.mark.django_db


class Hook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.url = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(json.loads(body))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


def _incident(trio: Trio, cause: str = Cause.WORKER_LOST, model: str = "m1") -> Incident:
    return services.incident_record(
        cause=cause, team_id=trio.team.pk, feature="planning.parse_prd", model_name=model, message="it broke"
    )


def test_alerts_go_by_mail_and_webhook_once_per_fingerprint_and_window(trio: Trio, hook: Hook, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    AlertChannel.objects.create(
        name="ops", emails="ops@example.com, lead@example.com", webhook_url=hook.url, min_severity=Severity.ERROR
    )
    incident = _incident(trio)
    sent = services.alerts_dispatch(incident=incident)
    assert [s.ok for s in sent] == [True]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com", "lead@example.com"]
    assert "Worker lost" in mail.outbox[0].subject and "planning.parse_prd" in mail.outbox[0].body
    assert hook.received == [
        {
            "incident": incident.pk,
            "cause": "worker_lost",
            "severity": "error",
            "status": "open",
            "feature": "planning.parse_prd",
            "model": "m1",
            "count": 1,
            "message": "it broke",
            "team": trio.team.pk,
        }
    ]
    # Within the window the same fingerprint is not sent again, even from a new incident.
    assert services.alerts_dispatch(incident=_incident(trio)) == []
    assert len(mail.outbox) == 1 and len(hook.received) == 1
    # Another fingerprint is sent; once the window has passed, the first one is sent again.
    services.alerts_dispatch(incident=_incident(trio, model="m2"))
    assert len(mail.outbox) == 2
    AlertSent.objects.update(sent_at=timezone.now() - timedelta(minutes=31))
    services.alerts_dispatch(incident=incident)
    assert len(mail.outbox) == 3 and len(hook.received) == 3


def test_low_severity_and_other_teams_are_not_alerted(trio: Trio, hook: Hook, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    AlertChannel.objects.create(name="team beta", team=trio.other_team, emails="beta@example.com")
    AlertChannel.objects.create(name="critical only", webhook_url=hook.url, min_severity=Severity.CRITICAL)
    assert services.alerts_dispatch(incident=_incident(trio, cause=Cause.TRUNCATED)) == []
    assert services.alerts_dispatch(incident=_incident(trio, cause=Cause.WORKER_LOST)) == []
    sent = services.alerts_dispatch(incident=_incident(trio, cause=Cause.MODEL_FILE))
    assert len(sent) == 1 and len(hook.received) == 1 and mail.outbox == []


def test_a_failing_webhook_is_recorded_not_raised(trio: Trio, hook: Hook) -> None:
    hook.status = 500
    AlertChannel.objects.create(name="hook", webhook_url=hook.url)
    (sent,) = services.alerts_dispatch(incident=_incident(trio))
    assert not sent.ok and "webhook failed" in sent.detail and "500" in sent.detail
