"""Applying a recommendation changes the setting and records a revision; rolling back restores it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from analytics import router, selectors, services
from analytics.models import ConfigRevision, Finding, Recommendation, Setting
from taskmaster.llm import CallContext
from taskmaster.llm.registry import role_default_set
from taskmaster.models import LLMModel, RoleDefault
from tests.analytics.seed import chat_model, make_call
from tests.conftest import Trio


def _finding(team: object, *, kind: str = "failure_rate", dims: dict[str, str] | None = None) -> Finding:
    dims = dims or {"model": "model-a", "feature": "planning.expand"}
    return Finding.objects.create(
        team=team,
        kind=kind,
        subject=", ".join(f"{k}={v}" for k, v in dims.items()),
        dims=dims,
        summary="stands out",
        evidence={},
        p_value=1e-6,
        effect_size=3.0,
        last_seen=timezone.now(),
    )


@pytest.fixture
def models(trio: Trio) -> tuple[LLMModel, LLMModel]:
    router.clear_cache()
    a, b = chat_model("model-a"), chat_model("model-b")
    role_default_set(role="main", model=a)
    return a, b


def _switch(trio: Trio) -> Recommendation:
    return Recommendation.objects.create(
        finding=_finding(trio.team),
        action="switch_role",
        title="Switch main to b",
        rationale="b fails less",
        params={"role": "main", "model": "model-b"},
    )


def test_apply_switch_role_then_roll_back(trio: Trio, models: tuple[LLMModel, LLMModel]) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-12345")
    rec = _switch(trio)
    revision = services.recommendation_apply(recommendation=rec, user=admin)
    assert RoleDefault.objects.get(role="main").model.name == "model-b"
    assert Setting.objects.get(team=None, key="routing.pin.main").value == "model-b"
    model, info = router.route("main", CallContext()) or (None, {})
    assert model is not None and model.name == "model-b" and info["strategy"] == "pinned"
    assert revision.before == {"role_default:main": "model-a", "setting:*:routing.pin.main": None}
    rec.refresh_from_db()
    assert rec.status == "applied" and rec.finding.status == "applied"
    with pytest.raises(ValidationError):
        services.recommendation_apply(recommendation=rec, user=admin)

    services.revision_rollback(revision=revision, user=admin)
    assert RoleDefault.objects.get(role="main").model.name == "model-a"
    assert not Setting.objects.filter(key="routing.pin.main").exists()
    rec.refresh_from_db()
    assert rec.status == "rolled_back" and rec.finding.status == "open"
    assert ConfigRevision.objects.get(pk=revision.pk).rolled_back_at is not None
    with pytest.raises(ValidationError, match="already rolled back"):
        services.revision_rollback(revision=revision, user=admin)


def test_rollback_is_refused_when_the_setting_changed_since(trio: Trio, models: tuple[LLMModel, LLMModel]) -> None:
    rec = Recommendation.objects.create(
        finding=_finding(trio.team, dims={"feature": "planning.parse_prd", "size": "l"}),
        action="split_prd",
        title="Split PRDs",
        rationale="long PRDs fail",
        params={"setting": {"team": trio.team.pk, "key": "planning.prd_split_tokens", "value": 4000}},
    )
    revision = services.recommendation_apply(recommendation=rec, user=trio.owner)
    assert selectors.setting_get("planning.prd_split_tokens", trio.team) == 4000
    assert selectors.setting_get("planning.prd_split_tokens", trio.other_team) is None
    Setting.objects.filter(key="planning.prd_split_tokens").update(value=2000)
    with pytest.raises(ValidationError, match="changed again"):
        services.revision_rollback(revision=revision, user=trio.owner)
    assert selectors.setting_get("planning.prd_split_tokens", trio.team) == 2000  # nothing half-applied
    Setting.objects.filter(key="planning.prd_split_tokens").update(value=4000)
    services.revision_rollback(revision=revision, user=trio.owner)
    assert selectors.setting_get("planning.prd_split_tokens", trio.team) is None


def test_advisory_recommendations_cannot_be_applied(trio: Trio) -> None:
    rec = Recommendation.objects.create(finding=_finding(trio.team), action="advisory", title="Look", rationale="x")
    with pytest.raises(ValidationError, match="advisory"):
        services.recommendation_apply(recommendation=rec, user=trio.owner)
    assert not ConfigRevision.objects.exists()


def test_did_it_help_compares_the_ledger_before_and_after(trio: Trio, models: tuple[LLMModel, LLMModel]) -> None:
    rec = _switch(trio)
    services.recommendation_apply(recommendation=rec, user=trio.owner)
    rec.refresh_from_db()
    assert services.recommendation_evaluate(recommendation=rec)["verdict"] == "too early"
    applied = timezone.now() - timedelta(hours=5)
    Recommendation.objects.filter(pk=rec.pk).update(decided_at=applied)
    for i in range(40):  # before: half of planning.expand failed; after: 1 in 40
        make_call(
            team=trio.team,
            model_name="model-a",
            feature="planning.expand",
            outcome="error" if i % 2 else "ok",
            at=applied - timedelta(hours=1),
        )
        make_call(
            team=trio.team,
            model_name="model-b",
            feature="planning.expand",
            outcome="error" if i == 0 else "ok",
            at=applied + timedelta(hours=1),
        )
    result = services.recommendation_evaluate(recommendation=rec)
    assert result["metric"] == "error rate"
    assert result["before"] == {"n": 40, "v": 0.5} and result["after"] == {"n": 40, "v": 0.025}
    assert result["verdict"] == "helped" and result["p_value"] < 0.05
    assert Recommendation.objects.get(pk=rec.pk).evaluation["verdict"] == "helped"


def test_apply_and_rollback_permissions(trio: Trio, models: tuple[LLMModel, LLMModel], client: Client) -> None:
    rec = _switch(trio)  # a role switch changes site-wide configuration: site admins only
    client.force_login(trio.outsider)
    assert client.post(f"/analytics/recommendations/{rec.pk}/apply/").status_code == 404
    client.force_login(trio.member)
    assert client.post(f"/analytics/recommendations/{rec.pk}/apply/").status_code == 403
    client.force_login(trio.owner)
    assert client.post(f"/analytics/recommendations/{rec.pk}/apply/").status_code == 403
    assert RoleDefault.objects.get(role="main").model.name == "model-a"
    team_rec = Recommendation.objects.create(
        finding=_finding(trio.team, kind="ttft_context", dims={"model": "model-a"}),
        action="lower_context",
        title="Lower",
        rationale="r",
        params={"setting": {"team": trio.team.pk, "key": "llm.context_budget.model-a", "value": 512}},
    )
    response = client.post(f"/analytics/recommendations/{team_rec.pk}/apply/")
    assert response.status_code == 302
    assert selectors.setting_get("llm.context_budget.model-a", trio.team) == 512
    revision = ConfigRevision.objects.get(recommendation=team_rec)
    client.force_login(trio.outsider)
    assert client.post(f"/analytics/revisions/{revision.pk}/rollback/").status_code == 404
    client.force_login(trio.member)
    assert client.post(f"/analytics/revisions/{revision.pk}/rollback/").status_code == 403
    client.force_login(trio.owner)
    page = client.get("/analytics/revisions/", {"team": "alpha"})
    assert page.status_code == 200 and b"llm.context_budget.model-a" in page.content
    assert client.post(f"/analytics/revisions/{revision.pk}/rollback/").status_code == 302
    assert selectors.setting_get("llm.context_budget.model-a", trio.team) is None
    dismissable = Recommendation.objects.create(
        finding=_finding(trio.team, dims={"feature": "x"}), action="advisory", title="Look", rationale="r"
    )
    client.force_login(trio.member)
    assert client.post(f"/analytics/recommendations/{dismissable.pk}/dismiss/").status_code == 403
    client.force_login(trio.owner)
    assert client.post(f"/analytics/recommendations/{dismissable.pk}/dismiss/").status_code == 302
    assert Recommendation.objects.get(pk=dismissable.pk).status == "dismissed"


def test_switching_to_an_unavailable_model_changes_nothing(trio: Trio, models: tuple[LLMModel, LLMModel]) -> None:
    LLMModel.objects.filter(name="model-b").update(available=False)
    with pytest.raises(ValidationError, match="not enabled and available"):
        services.recommendation_apply(recommendation=_switch(trio), user=trio.owner)
    assert RoleDefault.objects.get(role="main").model.name == "model-a"
    assert not Setting.objects.exists() and not ConfigRevision.objects.exists()
