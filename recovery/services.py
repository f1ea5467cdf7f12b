"""Every write of the recovery app: incidents and evidence, recoveries and steps, rollbacks, alerts."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from recovery import classify
from recovery.models import (
    AlertChannel,
    AlertSent,
    Cause,
    Evidence,
    Incident,
    Recovery,
    RecoveryStep,
    RegistryRevision,
)

log = logging.getLogger(__name__)


def _window() -> timedelta:
    return timedelta(hours=int(getattr(settings, "RECOVERY_INCIDENT_WINDOW_H", 24)))


# --- incidents --------------------------------------------------------------------------


def incident_record(
    *,
    cause: str,
    team_id: int | None,
    feature: str = "",
    model_name: str = "",
    message: str = "",
    call_id: str = "",
    job_id: int | None = None,
    error_class: str = "",
    traceback: str = "",
    input_chars: int = 0,
) -> Incident:
    """File one failure: join the unresolved incident of the same fingerprint, or open one.

    Idempotent per ledger call and per job: the worker's ledger hook and the caller's
    recovery handler may both report the same failed call.
    """
    fp = classify.fingerprint(cause=cause, feature=feature, model_name=model_name)
    for _ in range(3):
        try:
            incident, created = _incident_record_once(
                cause=cause,
                fp=fp,
                team_id=team_id,
                feature=feature,
                model_name=model_name,
                message=message,
                call_id=call_id,
                job_id=job_id,
                error_class=error_class,
                traceback=traceback,
                input_chars=input_chars,
            )
        except IntegrityError:
            # Another process opened the same incident (or filed the same call) at the same moment.
            continue
        if created:
            transaction.on_commit(lambda found=incident: _alerts_enqueue(found))  # type: ignore[misc]
        return incident
    raise RuntimeError(f"could not file the incident {fp} after 3 tries")


@transaction.atomic
def _incident_record_once(
    *,
    cause: str,
    fp: str,
    team_id: int | None,
    feature: str,
    model_name: str,
    message: str,
    call_id: str,
    job_id: int | None,
    error_class: str,
    traceback: str,
    input_chars: int,
) -> tuple[Incident, bool]:
    existing = None
    if call_id:
        existing = Evidence.objects.filter(call_id=call_id).select_related("incident").first()
    elif job_id is not None:
        existing = Evidence.objects.filter(job_id=job_id).select_related("incident").first()
    if existing is not None:
        return existing.incident, False
    now = timezone.now()
    incident = (
        Incident.objects.select_for_update()
        .filter(Q(team_id=team_id) if team_id is not None else Q(team__isnull=True), fingerprint=fp)
        .exclude(status=Incident.Status.RESOLVED)
        .first()
    )
    if incident is not None and incident.last_seen < now - _window():
        incident.status, incident.resolved_at = Incident.Status.RESOLVED, now
        incident.save(update_fields=["status", "resolved_at"])
        incident = None
    created = incident is None
    if incident is None:
        incident = Incident.objects.create(
            team_id=team_id,
            cause=cause,
            severity=classify.severity_of(cause),
            fingerprint=fp,
            feature=feature[:60],
            model_name=model_name[:80],
            message=message[:4000],
            first_seen=now,
            last_seen=now,
            count=0,
        )
    Evidence.objects.create(
        incident=incident,
        call_id=call_id,
        job_id=job_id,
        error_class=error_class[:60],
        message=message[:4000],
        traceback=traceback[:20000],
        input_chars=input_chars,
    )
    Incident.objects.filter(pk=incident.pk).update(count=F("count") + 1, last_seen=now, message=message[:4000])
    incident.refresh_from_db()
    return incident, created


def incident_from_call(*, call: Any) -> Incident | None:
    """File a failed ledger row (``LLMCall``); cancelled and successful calls are not incidents."""
    if call.outcome != "error":
        return None
    cause = classify.cause_of_error_class(call.error_class)
    if cause == Cause.UNKNOWN:
        # The runtime files infrastructure failures (a broker or database gone mid-call) as
        # "unknown"; their message still names what broke.
        cause = classify.cause_of_text(call.error_message)
    return incident_record(
        cause=cause,
        team_id=call.team_id,
        feature=call.feature,
        model_name=call.model_name,
        message=call.error_message,
        call_id=str(call.pk),
        error_class=call.error_class,
        input_chars=call.input_chars,
    )


def incident_from_job(*, job_id: int) -> Incident | None:
    from taskmaster.models import Job

    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.status != Job.Status.FAILED:
        return None
    text = job.error or job.message
    first_line = text.strip().splitlines()[-1] if text.strip() else "Job failed."
    return incident_record(
        cause=classify.cause_of_text(text),
        team_id=job.team_id,
        feature=job.kind,
        message=f"{job.title}: {first_line}"[:4000],
        job_id=job.pk,
        error_class="job_failed",
        traceback=text if "Traceback" in text else "",
    )


@transaction.atomic
def incident_resolve(*, incident: Incident, user: User) -> Incident:
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.status == Incident.Status.RESOLVED:
        raise ValidationError("This incident is already resolved.")
    incident.status, incident.resolved_at, incident.resolved_by = Incident.Status.RESOLVED, timezone.now(), user
    incident.save(update_fields=["status", "resolved_at", "resolved_by"])
    return incident


# --- recoveries --------------------------------------------------------------------------


@transaction.atomic
def recovery_start(*, incident: Incident, first_call_id: str, plan: list[str]) -> Recovery:
    recovery = Recovery.objects.create(
        incident=incident, first_call_id=first_call_id, plan=plan, failed_at=timezone.now()
    )
    Incident.objects.filter(pk=incident.pk).exclude(status=Incident.Status.RESOLVED).update(
        status=Incident.Status.RECOVERING
    )
    return recovery


@transaction.atomic
def step_add(*, recovery: Recovery, action: str, params: dict[str, Any], detail: str = "") -> RecoveryStep:
    number = recovery.steps.count() + 1
    return RecoveryStep.objects.create(
        recovery=recovery, number=number, action=action, params=params, detail=detail, started_at=timezone.now()
    )


@transaction.atomic
def step_finish(*, step_id: int, ok: bool, call_id: str = "", detail: str = "") -> RecoveryStep | None:
    """Settle a retried call's step; on success the whole recovery (and incident) is recovered."""
    step = RecoveryStep.objects.select_for_update().select_related("recovery").filter(pk=step_id).first()
    if step is None:
        return None
    now = timezone.now()
    if step.outcome == RecoveryStep.Outcome.PENDING or (ok and step.outcome != RecoveryStep.Outcome.OK):
        # Settled once (the worker's ledger hook and the caller's handler may both report it);
        # the detail keeps what the step changed, plus why it failed.
        step.duration_s = (now - step.started_at).total_seconds()
        if detail and not ok:
            step.detail = f"{step.detail} — failed: {detail}"[:2000]
    step.outcome = RecoveryStep.Outcome.OK if ok else RecoveryStep.Outcome.FAILED
    step.call_id = call_id or step.call_id
    step.save()
    recovery = step.recovery
    if ok:
        recovery.outcome, recovery.finished_at = Recovery.Outcome.RECOVERED, now
        recovery.seconds = (now - recovery.failed_at).total_seconds()
        recovery.final_message = f"Recovered by step {step.number} ({step.action})."
        recovery.save()
        Incident.objects.filter(pk=recovery.incident_id).exclude(status=Incident.Status.RESOLVED).update(
            status=Incident.Status.RECOVERED
        )
    elif recovery.outcome == Recovery.Outcome.RECOVERED:
        # The call looked fine to the worker but the caller rejected it (schema checked afterwards).
        recovery.outcome, recovery.finished_at, recovery.seconds = Recovery.Outcome.RUNNING, None, None
        recovery.final_message = ""
        recovery.save()
        Incident.objects.filter(pk=recovery.incident_id).update(status=Incident.Status.RECOVERING)
    return step


@transaction.atomic
def recovery_give_up(*, recovery: Recovery, reason: str) -> Recovery:
    recovery = Recovery.objects.select_for_update().get(pk=recovery.pk)
    now = timezone.now()
    step_add(recovery=recovery, action="give_up", params={}, detail=reason)
    RecoveryStep.objects.filter(recovery=recovery, action="give_up").update(
        outcome=RecoveryStep.Outcome.GAVE_UP, duration_s=0
    )
    recovery.outcome, recovery.finished_at = Recovery.Outcome.FAILED, now
    recovery.seconds = (now - recovery.failed_at).total_seconds()
    recovery.final_message = reason[:2000]
    recovery.save()
    Incident.objects.filter(pk=recovery.incident_id).exclude(status=Incident.Status.RESOLVED).update(
        status=Incident.Status.FAILED
    )
    return recovery


# --- model registry revisions --------------------------------------------------------------


def registry_record(
    *, kind: str, object_key: str, description: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> RegistryRevision | None:
    if before == after:
        return None
    return RegistryRevision.objects.create(
        kind=kind, object_key=object_key, description=description[:300], before=before, after=after
    )


@transaction.atomic
def registry_rollback(*, revision: RegistryRevision, user: User) -> RegistryRevision:
    """Restore the registry row as it was before ``revision``; refused when it changed again since."""
    from recovery import registry_snapshots as snaps

    rev = RegistryRevision.objects.select_for_update().get(pk=revision.pk)
    if rev.rolled_back_at is not None:
        raise ValidationError("This registry change was already rolled back.")
    current = snaps.current(rev.kind, rev.object_key)
    if current != rev.after:
        raise ValidationError(
            "Cannot roll back: this registry entry changed again since; roll back the later change first."
        )
    snaps.restore(rev.kind, rev.object_key, rev.before)
    rev.rolled_back_at, rev.rolled_back_by = timezone.now(), user
    rev.save(update_fields=["rolled_back_at", "rolled_back_by"])
    return rev


# --- alerts --------------------------------------------------------------------------------


def _alerts_enqueue(incident: Incident) -> None:
    if not AlertChannel.objects.filter(enabled=True, min_severity__lte=incident.severity).exists():
        return
    from recovery.tasks import alerts_send

    try:
        alerts_send.delay(incident.pk)
    except Exception:  # the broker may be the thing that is down; never fail the caller for an alert
        log.exception("could not enqueue alerts for incident %s", incident.pk)


def alerts_dispatch(*, incident: Incident, now: Any = None) -> list[AlertSent]:
    """Send ``incident`` to every matching channel, at most once per fingerprint per channel's window."""
    import httpx

    now = now or timezone.now()
    sent: list[AlertSent] = []
    channels = AlertChannel.objects.filter(enabled=True, min_severity__lte=incident.severity)
    if incident.team_id is not None:
        channels = channels.filter(Q(team__isnull=True) | Q(team_id=incident.team_id))
    else:
        channels = channels.filter(team__isnull=True)
    for channel in channels.distinct():
        with transaction.atomic():
            locked = AlertChannel.objects.select_for_update().get(pk=channel.pk)
            since = now - timedelta(minutes=locked.rate_limit_minutes)
            if AlertSent.objects.filter(channel=locked, fingerprint=incident.fingerprint, sent_at__gte=since).exists():
                continue
            subject = f"[Task Master] {incident.get_severity_display()}: {incident.get_cause_display()}"
            body = (
                f"{incident.get_cause_display()} in {incident.feature or 'unknown feature'}"
                f" on {incident.model_name or 'no model'}\n"
                f"Status: {incident.get_status_display()}, seen {incident.count} time(s)\n"
                f"{incident.message}\n"
            )
            problems: list[str] = []
            if locked.email_list:
                try:
                    send_mail(subject, body, None, locked.email_list)
                except Exception as exc:  # noqa: BLE001 - any mail backend error is reported, not raised
                    problems.append(f"e-mail failed: {exc}")
            if locked.webhook_url:
                payload = {
                    "incident": incident.pk,
                    "cause": incident.cause,
                    "severity": incident.get_severity_display().lower(),
                    "status": incident.status,
                    "feature": incident.feature,
                    "model": incident.model_name,
                    "count": incident.count,
                    "message": incident.message[:1000],
                    "team": incident.team_id,
                }
                try:
                    httpx.post(locked.webhook_url, json=payload, timeout=5.0).raise_for_status()
                except httpx.HTTPError as exc:
                    problems.append(f"webhook failed: {exc}")
            sent.append(
                AlertSent.objects.create(
                    channel=locked,
                    incident=incident,
                    fingerprint=incident.fingerprint,
                    ok=not problems,
                    detail="; ".join(problems),
                )
            )
    return sent
