"""A UAT session with two testers, end to end through the views, and its permission checks."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from analytics.quality.models import Scenario, UatSession, Verdict
from taskmaster.models import Feedback, Membership, Role
from tests.conftest import Trio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _client(user: object) -> Client:
    c = Client()
    c.force_login(user)  # type: ignore[arg-type]
    return c


def url(name: str, *args: object) -> str:
    return reverse(f"analytics:quality:{name}", args=args)


@pytest.fixture
def viewer(trio: Trio) -> object:
    user = get_user_model().objects.create_user("viewer", "v@example.com", "pw-viewer-123")
    Membership.objects.create(user=user, team=trio.team, role=Role.VIEWER)
    return user


def test_two_testers_produce_the_acceptance_report(trio: Trio, viewer: object) -> None:
    owner, member, outsider = _client(trio.owner), _client(trio.member), _client(trio.outsider)
    # The member (editor) coordinates; the owner and a viewer test.
    r = member.post(url("uat_create"), {"name": "Release 1.0", "starts_on": "2026-11-01", "ends_on": "2026-11-30"})
    session = UatSession.objects.get()
    assert r.status_code == 302 and session.coordinator == trio.member
    for n in (1, 2):
        member.post(
            url("uat_scenario_add", session.pk),
            {
                "title": f"Scenario {n}",
                "steps": "Open it.\nUse it.",
                "acceptance_criteria": "It works.",
                "start_path": "/research/",
            },
        )
    s1, s2 = list(session.scenarios.all())
    assert member.post(url("uat_testers", session.pk), {"testers": [trio.owner.pk, viewer.pk]}).status_code == 302  # type: ignore[attr-defined]
    tester2 = _client(viewer)

    # The outsider cannot see anything; a non-invited member cannot record a verdict.
    assert outsider.get(url("uat", session.pk)).status_code == 404
    assert outsider.get(url("uat_progress", session.pk)).status_code == 404
    assert outsider.post(url("uat_verdict", s1.pk), {"outcome": "pass"}).status_code == 404
    assert outsider.get(url("uat_report_md", session.pk)).status_code == 404
    assert member.post(url("uat_verdict", s1.pk), {"outcome": "pass"}).status_code == 403
    # Testers cannot coordinate.
    assert tester2.post(url("uat_status", session.pk), {"status": "closed"}).status_code == 403
    assert tester2.get(url("uat_report_csv", session.pk)).status_code == 403
    assert (
        tester2.post(
            url("uat_scenario_add", session.pk), {"title": "x", "steps": "x", "acceptance_criteria": "x"}
        ).status_code
        == 403
    )

    page = tester2.get(url("uat", session.pk)).content.decode()
    assert "Verdict for Scenario 1" in page and 'href="/research/"' in page
    owner.post(
        url("uat_verdict", s1.pk),
        {"outcome": "pass", "comment": "Fine", "screenshot": SimpleUploadedFile("s.png", PNG)},
    )
    owner.post(url("uat_verdict", s2.pk), {"outcome": "pass"})
    tester2.post(url("uat_verdict", s1.pk), {"outcome": "pass"})
    tester2.post(url("uat_verdict", s2.pk), {"outcome": "fail", "comment": "=cmd|' /C calc'!A0"})
    # A re-submission replaces the verdict rather than adding one.
    tester2.post(url("uat_verdict", s2.pk), {"outcome": "blocked", "comment": "=cmd|' /C calc'!A0"})
    assert Verdict.objects.count() == 4
    r = tester2.post(url("uat_rate", s2.pk), {"rating": "-1", "comment": "Wrong summary"})
    assert r.status_code == 302
    fb = Feedback.objects.get()
    assert (fb.feature, fb.target, fb.rating, fb.user) == ("uat", f"analytics.uat_scenario:{s2.pk}", -1, viewer)

    progress = member.get(url("uat_progress", session.pk)).content.decode()
    assert "75 %" in progress and "4 of 4 verdicts in" in progress and 'hx-trigger="every 2s"' in progress

    md = member.get(url("uat_report_md", session.pk))
    text = md.content.decode()
    assert md["Content-Type"].startswith("text/markdown")
    assert "Acceptance rate: 75.0 % (target 90.0 %): **below the target**" in text
    assert "| owner | 2 | 0 | 0 | 0 | 100.0 % |" in text
    assert "| viewer | 1 | 0 | 1 | 0 | 50.0 % |" in text
    assert "- owner: **pass** — Fine (screenshot attached)" in text
    rows = list(csv.reader(io.StringIO(member.get(url("uat_report_csv", session.pk)).content.decode())))
    assert rows[0] == ["scenario", "title", "tester", "outcome", "comment", "screenshot", "updated_at"]
    assert [r[2:4] for r in rows[1:5]] == [
        ["owner", "pass"],
        ["viewer", "pass"],
        ["owner", "pass"],
        ["viewer", "blocked"],
    ]
    assert rows[4][4].startswith("'=")  # spreadsheet formulas are neutralised
    assert rows[-1][:2] == ["acceptance_rate", "0.7500"]

    shot = Verdict.objects.get(scenario=s1, tester=trio.owner)
    assert b"".join(tester2.get(url("uat_screenshot", shot.pk)).streaming_content) == PNG  # type: ignore[attr-defined]
    assert outsider.get(url("uat_screenshot", shot.pk)).status_code == 404

    # Close: verdicts are refused; then archive; an archived session cannot reopen.
    member.post(url("uat_status", session.pk), {"status": "closed"})
    tester2.post(url("uat_verdict", s2.pk), {"outcome": "pass"})
    assert Verdict.objects.get(scenario=s2, tester=viewer).outcome == "blocked"
    owner.post(url("uat_status", session.pk), {"status": "archived"})  # a team owner may coordinate too
    session.refresh_from_db()
    assert session.status == "archived"
    member.post(url("uat_status", session.pk), {"status": "open"})
    session.refresh_from_db()
    assert session.status == "archived"
    assert "Release 1.0" not in member.get(url("uat_list")).content.decode()
    assert "Release 1.0" in member.get(url("uat_list") + "?archived=1").content.decode()


def test_bad_input_gets_clear_messages(trio: Trio) -> None:
    owner = _client(trio.owner)
    r = owner.post(url("uat_create"), {"name": "S", "starts_on": "2026-11-10", "ends_on": "2026-11-01"}, follow=True)
    assert "The period ends before it starts." in r.content.decode()
    owner.post(url("uat_create"), {"name": "S", "starts_on": "2026-11-01", "ends_on": "2026-11-10"})
    session = UatSession.objects.get()
    r = owner.post(
        url("uat_scenario_add", session.pk),
        {"title": "T", "steps": "s", "acceptance_criteria": "c", "start_path": "javascript:alert(1)"},
        follow=True,
    )
    assert "a path on this site" in r.content.decode() and not Scenario.objects.exists()
    owner.post(url("uat_scenario_add", session.pk), {"title": "T", "steps": "s", "acceptance_criteria": "c"})
    r = owner.post(url("uat_testers", session.pk), {"testers": [trio.outsider.pk]}, follow=True)
    assert "Not members of Alpha: outsider." in r.content.decode()
    owner.post(url("uat_testers", session.pk), {"testers": [trio.owner.pk]})
    scenario = Scenario.objects.get()
    r = owner.post(
        url("uat_verdict", scenario.pk),
        {"outcome": "pass", "screenshot": SimpleUploadedFile("evil.png", b"<svg onload=alert(1)>")},
        follow=True,
    )
    assert "evil.png is not a PNG or JPEG image." in r.content.decode() and not Verdict.objects.exists()
    r = owner.post(url("uat_verdict", scenario.pk), {"outcome": "maybe"}, follow=True)
    assert "A verdict is pass, fail or blocked." in r.content.decode()
    r = owner.post(url("uat_rate", scenario.pk), {"rating": "5"}, follow=True)
    assert "A rating is +1" in r.content.decode() and not Feedback.objects.exists()
    # The outsider cannot create a session in a team they are not in (their own current team is Beta).
    _client(trio.outsider).post(url("uat_create"), {"name": "Mine", "starts_on": "2026-11-01", "ends_on": "2026-11-02"})
    assert UatSession.objects.get(name="Mine").team == trio.other_team
