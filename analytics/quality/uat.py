"""Writes and reads of UAT sessions: scenarios, testers, verdicts, acceptance, reports."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from analytics.quality.models import Scenario, UatSession, UatTester, Verdict
from taskmaster.access import Perm, can
from taskmaster.models import Feedback, Membership, Team
from taskmaster.services import feedback_record

TARGET = 0.9
SCREENSHOT_MAX_BYTES = 5 * 1024 * 1024
_COUNTER = {"pass": "passed", "fail": "failed", "blocked": "blocked"}
_MAGIC = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}


def can_coordinate(user: Any, session: UatSession) -> bool:
    return session.coordinator_id == user.pk or can(user, session.team, Perm.MANAGE)


def is_tester(user: Any, session: UatSession) -> bool:
    return UatTester.objects.filter(session=session, user_id=user.pk).exists()


def _require_coordinator(user: Any, session: UatSession) -> None:
    if not can_coordinate(user, session):
        raise PermissionDenied("Only the session's coordinator or a team owner may do this.")


def _require_open(session: UatSession) -> None:
    if session.status != UatSession.Status.OPEN:
        raise ValidationError(f"The session is {session.get_status_display().lower()}; reopen it first.")


@transaction.atomic
def session_create(
    *, team: Team, coordinator: User, name: str, starts_on: date, ends_on: date, description: str = ""
) -> UatSession:
    if not can(coordinator, team, Perm.EDIT):
        raise PermissionDenied("Only editors and owners of the team may coordinate a UAT session.")
    name = name.strip()[:150]
    if not name:
        raise ValidationError("A session needs a name.")
    if ends_on < starts_on:
        raise ValidationError("The period ends before it starts.")
    return UatSession.objects.create(
        team=team, coordinator=coordinator, name=name, starts_on=starts_on, ends_on=ends_on, description=description
    )


@transaction.atomic
def scenario_add(
    *, session: UatSession, user: User, title: str, steps: str, acceptance_criteria: str, start_path: str = ""
) -> Scenario:
    _require_coordinator(user, session)
    _require_open(session)
    title, steps, criteria = title.strip()[:200], steps.strip(), acceptance_criteria.strip()
    if not title or not steps or not criteria:
        raise ValidationError("A scenario needs a title, steps and acceptance criteria.")
    start_path = start_path.strip()
    # A path on this site only: no other hosts, no javascript: URLs.
    if start_path and (not start_path.startswith("/") or start_path.startswith("//")):
        raise ValidationError("The start page is a path on this site, starting with / (e.g. /research/).")
    position = (session.scenarios.order_by("-position").values_list("position", flat=True).first() or 0) + 1
    return Scenario.objects.create(
        session=session,
        position=position,
        title=title,
        steps=steps,
        acceptance_criteria=criteria,
        start_path=start_path[:200],
    )


@transaction.atomic
def testers_set(*, session: UatSession, user: User, testers: list[User]) -> list[UatTester]:
    """Invite exactly these team members (others are un-invited; their verdicts stay)."""
    _require_coordinator(user, session)
    _require_open(session)
    members = set(Membership.objects.filter(team=session.team).values_list("user_id", flat=True))
    strangers = [u.username for u in testers if u.pk not in members]
    if strangers:
        raise ValidationError(f"Not members of {session.team}: {', '.join(strangers)}.")
    UatTester.objects.filter(session=session).exclude(user__in=testers).delete()
    return [UatTester.objects.get_or_create(session=session, user=u)[0] for u in testers]


def _sniff(upload: UploadedFile) -> str:
    if (upload.size or 0) > SCREENSHOT_MAX_BYTES:
        raise ValidationError(
            f"The screenshot is {(upload.size or 0) / 1e6:.1f} MB; the limit is {SCREENSHOT_MAX_BYTES / 1e6:.0f} MB."
        )
    head = upload.read(8)
    upload.seek(0)
    for magic, ext in _MAGIC.items():
        if head.startswith(magic):
            return ext
    raise ValidationError(f"{upload.name} is not a PNG or JPEG image.")


@transaction.atomic
def verdict_record(
    *,
    scenario: Scenario,
    tester: User,
    outcome: str,
    comment: str = "",
    screenshot: UploadedFile | None = None,
) -> Verdict:
    session = scenario.session
    if not is_tester(tester, session):
        raise PermissionDenied("Only invited testers record verdicts.")
    _require_open(session)
    if outcome not in Verdict.Outcome.values:
        raise ValidationError("A verdict is pass, fail or blocked.")
    ext = _sniff(screenshot) if screenshot is not None else ""
    verdict, _ = Verdict.objects.select_for_update().get_or_create(
        scenario=scenario, tester=tester, defaults={"outcome": outcome}
    )
    verdict.outcome, verdict.comment = outcome, comment.strip()[:4000]
    if screenshot is not None:
        old = verdict.screenshot.name if verdict.screenshot else ""
        verdict.screenshot.save(f"uat-{scenario.pk}-{tester.pk}.{ext}", screenshot, save=False)
        if old:
            storage = verdict.screenshot.storage
            transaction.on_commit(lambda: storage.delete(old))
    verdict.save()
    return verdict


def rating_target(scenario: Scenario) -> str:
    return f"analytics.uat_scenario:{scenario.pk}"


def scenario_rate(*, scenario: Scenario, tester: User, rating: int, comment: str = "") -> Feedback:
    """A tester's thumbs up/down on the AI output they met in this scenario."""
    session = scenario.session
    if not is_tester(tester, session):
        raise PermissionDenied("Only invited testers rate AI outputs in a session.")
    _require_open(session)
    return feedback_record(
        team=session.team, user=tester, feature="uat", target=rating_target(scenario), rating=rating, comment=comment
    )


@transaction.atomic
def session_set_status(*, session: UatSession, user: User, status: str) -> UatSession:
    _require_coordinator(user, session)
    allowed = {
        UatSession.Status.OPEN: {UatSession.Status.CLOSED},
        UatSession.Status.CLOSED: {UatSession.Status.OPEN, UatSession.Status.ARCHIVED},
        UatSession.Status.ARCHIVED: set(),
    }
    if status not in allowed[UatSession.Status(session.status)]:
        raise ValidationError(f"A {session.status} session cannot become {status}.")
    session.status = status
    session.closed_at = timezone.now() if status != UatSession.Status.OPEN else None
    session.save(update_fields=["status", "closed_at"])
    return session


# --- acceptance ------------------------------------------------------------------------------


@dataclass
class TesterRow:
    username: str
    passed: int = 0
    failed: int = 0
    blocked: int = 0
    pending: int = 0

    def rate(self, scenarios: int) -> float | None:
        return self.passed / scenarios if scenarios else None


@dataclass
class Acceptance:
    scenarios: int
    testers: list[TesterRow]
    expected: int  # scenarios x testers
    passed: int
    recorded: int
    rate: float | None
    per_scenario: list[dict[str, Any]] = field(default_factory=list)
    target: float = TARGET

    @property
    def meets_target(self) -> bool:
        return self.rate is not None and self.rate >= self.target

    @property
    def percent_done(self) -> int:
        return int(100 * self.recorded / self.expected) if self.expected else 0


def acceptance(session: UatSession) -> Acceptance:
    """Passed verdicts over all expected verdicts (scenarios x invited testers).

    A verdict not yet given counts as not passed, so the rate can only rise while testers work.
    """
    scenarios = list(session.scenarios.all())
    testers = list(session.invitations.select_related("user"))
    verdicts = {
        (v.scenario_id, v.tester_id): v
        for v in Verdict.objects.filter(scenario__session=session, tester__in=[t.user for t in testers])
    }
    rows = []
    for t in testers:
        row = TesterRow(t.user.username)
        for s in scenarios:
            v = verdicts.get((s.pk, t.user_id))
            attr = _COUNTER[v.outcome] if v else "pending"
            setattr(row, attr, getattr(row, attr) + 1)
        rows.append(row)
    per_scenario = []
    for s in scenarios:
        cells = [verdicts.get((s.pk, t.user_id)) for t in testers]
        per_scenario.append(
            {
                "scenario": s,
                "cells": [(t.user.username, c) for t, c in zip(testers, cells, strict=True)],
                "passed": sum(1 for c in cells if c and c.outcome == Verdict.Outcome.PASS),
            }
        )
    expected = len(scenarios) * len(testers)
    passed = sum(r.passed for r in rows)
    return Acceptance(
        scenarios=len(scenarios),
        testers=rows,
        expected=expected,
        passed=passed,
        recorded=sum(1 for v in verdicts.values() if v.scenario_id in {s.pk for s in scenarios}),
        rate=passed / expected if expected else None,
        per_scenario=per_scenario,
    )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def report_markdown(session: UatSession) -> str:
    acc = acceptance(session)
    lines = [
        f"# UAT report: {session.name}",
        "",
        f"- Team: {session.team.name}",
        f"- Coordinator: {session.coordinator.username if session.coordinator else '-'}",
        f"- Period: {session.starts_on:%Y-%m-%d} to {session.ends_on:%Y-%m-%d}",
        f"- Status: {session.get_status_display()}",
        f"- Acceptance rate: {_pct(acc.rate)} (target {_pct(acc.target)}): "
        + ("**meets the target**" if acc.meets_target else "**below the target**"),
        f"- Verdicts recorded: {acc.recorded} of {acc.expected}",
        "",
        "## Per tester",
        "",
        "| tester | passed | failed | blocked | pending | acceptance |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in acc.testers:
        lines.append(
            f"| {r.username} | {r.passed} | {r.failed} | {r.blocked} | {r.pending} | {_pct(r.rate(acc.scenarios))} |"
        )
    lines += ["", "## Scenarios", ""]
    for row in acc.per_scenario:
        s = row["scenario"]
        lines += [f"### {s.position}. {_md(s.title)}", "", f"Acceptance criteria: {_md(s.acceptance_criteria)}", ""]
        for username, v in row["cells"]:
            if v is None:
                lines.append(f"- {username}: pending")
            else:
                note = f" — {_md(v.comment)}" if v.comment else ""
                shot = " (screenshot attached)" if v.screenshot else ""
                lines.append(f"- {username}: **{v.outcome}**{note}{shot}")
        lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _csv_cell(value: Any) -> Any:
    # Spreadsheets run cells starting with these characters as formulas.
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return value


def report_csv(session: UatSession) -> str:
    acc = acceptance(session)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["scenario", "title", "tester", "outcome", "comment", "screenshot", "updated_at"])
    for row in acc.per_scenario:
        s = row["scenario"]
        for username, v in row["cells"]:
            writer.writerow(
                [
                    s.position,
                    _csv_cell(s.title),
                    username,
                    v.outcome if v else "pending",
                    _csv_cell(v.comment) if v else "",
                    "yes" if v and v.screenshot else "",
                    v.updated_at.isoformat() if v else "",
                ]
            )
    writer.writerow([])
    writer.writerow(["acceptance_rate", f"{acc.rate:.4f}" if acc.rate is not None else "", "target", acc.target])
    return out.getvalue()
