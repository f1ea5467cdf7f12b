"""The rollback center: one click rolls back planning revisions, configuration changes and registry edits."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import reverse

from analytics.models import ConfigRevision, Setting
from analytics.services import routing_pin_set
from planning.models import Revision, Tag, Task
from planning.services import project_create, task_create
from planning.services.core import recording
from recovery.models import RegistryRevision
from taskmaster.llm.defaults import CHAT_NAME, register_defaults
from taskmaster.llm.models import LLMModel, RoleDefault
from tests.conftest import Trio

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _admin() -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")


def _rollback(user: Any, kind: str, pk: int) -> Any:
    return _client(user).post(reverse("recovery:rollback", args=[kind, pk]), follow=True)


def _planning_revision(trio: Trio) -> tuple[Tag, Revision]:
    project = project_create(team=trio.team, name="Shop")
    tag = Tag.objects.get(project=project, name="master")
    task_create(tag=tag, title="Keep me")
    with transaction.atomic(), recording(tag=tag, user=trio.owner, workflow="parse-prd") as draft:
        task_create(tag=tag, title="Generated one")
        task_create(tag=tag, title="Generated two")
        draft.summary = "Added 2 tasks"
    assert draft.revision is not None
    return tag, draft.revision


def test_a_planning_revision_is_rolled_back_by_an_editor_and_hidden_from_outsiders(trio: Trio) -> None:
    tag, revision = _planning_revision(trio)
    page = _client(trio.member).get(reverse("recovery:rollbacks"))
    assert page.status_code == 200 and "Added 2 tasks" in page.content.decode()
    assert "Added 2 tasks" not in _client(trio.outsider).get(reverse("recovery:rollbacks")).content.decode()
    assert _rollback(trio.outsider, "planning", revision.pk).status_code == 404
    assert Task.objects.filter(tag=tag).count() == 3
    response = _rollback(trio.member, "planning", revision.pk)
    assert response.status_code == 200 and "Rolled back: Added 2 tasks" in response.content.decode()
    assert list(Task.objects.filter(tag=tag).values_list("title", flat=True)) == ["Keep me"]
    revision.refresh_from_db()
    assert revision.rolled_back_at is not None
    again = _rollback(trio.member, "planning", revision.pk)
    assert "already rolled back" in again.content.decode() and Task.objects.filter(tag=tag).count() == 1


def test_a_team_configuration_change_needs_the_owner(trio: Trio) -> None:
    key = f"setting:{trio.team.pk}:llm.max_tokens.Demo"
    Setting.objects.create(team=trio.team, key="llm.max_tokens.Demo", value=512)
    rev = ConfigRevision.objects.create(
        team=trio.team, description="Raised Demo budget", before={key: 256}, after={key: 512}, created_by=trio.owner
    )
    assert _rollback(trio.outsider, "analytics", rev.pk).status_code == 404
    assert _rollback(trio.member, "analytics", rev.pk).status_code == 403
    response = _rollback(trio.owner, "analytics", rev.pk)
    assert "Rolled back: Raised Demo budget" in response.content.decode()
    assert Setting.objects.get(team=trio.team, key="llm.max_tokens.Demo").value == 256
    rev.refresh_from_db()
    assert rev.rolled_back_at is not None and rev.rolled_back_by == trio.owner


def test_a_site_wide_configuration_change_is_for_site_admins(trio: Trio) -> None:
    admin = _admin()
    register_defaults(verify=False)
    rev = routing_pin_set(role="main", model=LLMModel.objects.get(name=CHAT_NAME), user=admin)
    assert _rollback(trio.owner, "analytics", rev.pk).status_code == 404
    assert "Pinned role main" in _client(admin).get(reverse("recovery:rollbacks")).content.decode()
    _rollback(admin, "analytics", rev.pk)
    assert not Setting.objects.filter(team__isnull=True, key="routing.pin.main").exists()


def test_model_registry_edits_are_recorded_and_rolled_back(trio: Trio) -> None:
    admin = _admin()
    register_defaults(verify=False)
    model = LLMModel.objects.get(name=CHAT_NAME)
    model.context_length, model.n_batch = 1024, 128
    model.save()
    edit = RegistryRevision.objects.filter(kind="model").latest("pk")
    assert edit.before is not None
    assert edit.description == f"Model {CHAT_NAME}: changed context_length, n_batch"
    assert edit.before["context_length"] == 4096 and edit.after["context_length"] == 1024
    # Verification results are facts about the file, not edits.
    count = RegistryRevision.objects.count()
    LLMModel.objects.get(pk=model.pk).save(update_fields=["available"])
    assert RegistryRevision.objects.count() == count
    assert _rollback(trio.owner, "registry", edit.pk).status_code == 404
    assert 'data-kind="registry"' not in _client(trio.owner).get(reverse("recovery:rollbacks")).content.decode()
    response = _rollback(admin, "registry", edit.pk)
    assert f"Rolled back: Model {CHAT_NAME}" in response.content.decode()
    model.refresh_from_db()
    assert (model.context_length, model.n_batch) == (4096, edit.before["n_batch"])
    # The rollback is itself a change that can be undone.
    assert RegistryRevision.objects.latest("pk").after["context_length"] == 4096


def test_role_default_changes_roll_back_and_refuse_when_changed_again(trio: Trio) -> None:
    admin = _admin()
    register_defaults(verify=False)
    other = LLMModel.objects.create(name="other-chat", file_path="x.gguf", roles=["main"], available=True)
    default = RoleDefault.objects.get(role="main")
    default.model = other
    default.save()
    switched = RegistryRevision.objects.filter(kind="role_default").latest("pk")
    assert switched.description == f"Role main: {CHAT_NAME} → other-chat"
    default.model = LLMModel.objects.get(name=CHAT_NAME)
    default.save()
    refused = _rollback(admin, "registry", switched.pk)
    assert "changed again since" in refused.content.decode()
    latest = RegistryRevision.objects.filter(kind="role_default").latest("pk")
    _rollback(admin, "registry", latest.pk)
    assert RoleDefault.objects.get(role="main").model == other
    _rollback(admin, "registry", switched.pk)
    assert RoleDefault.objects.get(role="main").model.name == CHAT_NAME
