"""The playground page and its rating form: staff only, and only on one's own calls."""

from __future__ import annotations

import uuid

from django.test import Client

from taskmaster.models import Feedback, LLMCall
from tests.conftest import Trio


def _staff(trio: Trio) -> None:
    trio.owner.is_staff = True
    trio.owner.save()


def test_playground_is_for_staff_only(client: Client, trio: Trio) -> None:
    _staff(trio)
    client.force_login(trio.owner)
    page = client.get("/llm/playground/")
    assert page.status_code == 200 and b'ws-connect="/ws/llm/playground/"' in page.content
    for user in (trio.member, trio.outsider):
        client.force_login(user)
        assert client.get("/llm/playground/").status_code == 302
    client.logout()
    assert client.get("/llm/playground/").status_code == 302


def test_rating_an_answer_records_feedback_linked_to_the_call(client: Client, trio: Trio) -> None:
    _staff(trio)
    call = LLMCall.objects.create(id=uuid.uuid4(), user=trio.owner, feature="playground", model_name="m")
    client.force_login(trio.owner)
    response = client.post(f"/llm/playground/feedback/{call.pk}/", {"rating": "-1", "comment": "too short"})
    assert response.status_code == 200 and "Thanks, rated not helpful" in response.content.decode()
    feedback = Feedback.objects.get()
    assert (feedback.call_id, feedback.rating, feedback.comment, feedback.team) == (call.pk, -1, "too short", trio.team)
    # Rating again replaces the rating rather than adding a second one.
    client.post(f"/llm/playground/feedback/{call.pk}/", {"rating": "1"})
    assert Feedback.objects.get().rating == 1


def test_bad_rating_and_other_peoples_calls_are_refused(client: Client, trio: Trio) -> None:
    _staff(trio)
    trio.member.is_staff = True
    trio.member.save()
    call = LLMCall.objects.create(id=uuid.uuid4(), user=trio.owner, feature="playground", model_name="m")
    client.force_login(trio.owner)
    bad = client.post(f"/llm/playground/feedback/{call.pk}/", {"rating": "7"})
    assert bad.status_code == 400 and "thumbs up or thumbs down" in bad.content.decode()
    client.force_login(trio.member)
    assert client.post(f"/llm/playground/feedback/{call.pk}/", {"rating": "1"}).status_code == 404
    client.force_login(trio.outsider)
    assert client.post(f"/llm/playground/feedback/{call.pk}/", {"rating": "1"}).status_code == 302
    assert not Feedback.objects.exists()
