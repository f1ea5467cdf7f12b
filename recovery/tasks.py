from __future__ import annotations

from celery import shared_task

from recovery import services
from recovery.models import Incident


@shared_task(name="recovery.alerts_send", ignore_result=True)
def alerts_send(incident_id: int) -> None:
    """Idempotent: the per-fingerprint rate limit makes a re-delivered task send nothing twice."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is not None:
        services.alerts_dispatch(incident=incident)
