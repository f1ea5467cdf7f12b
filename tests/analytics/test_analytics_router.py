"""Adaptive routing: Thompson sampling settles on the better model; pins and fallbacks."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from analytics import router, services
from analytics.models import Setting
from taskmaster.llm import CallContext
from taskmaster.models import Feedback, LLMModel
from tests.analytics.seed import chat_model, make_call
from tests.conftest import Trio

CALLS_TO_SETTLE = 200  # settled: calls 201-300 go to the better model at least 85% of the time


def simulate(true_reward: dict[str, float], calls: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    arms = {name: router.Arm(name=name) for name in true_reward}
    picks = []
    for _ in range(calls):
        arm, _info = router.choose(list(arms.values()), rng)
        reward = 1.0 if rng.random() < true_reward[arm.name] else 0.0
        arm.calls += 1
        arm.reward += reward
        picks.append(arm.name)
    return picks


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_router_settles_on_the_better_model_within_200_calls(seed: int) -> None:
    picks = simulate({"good": 0.8, "poor": 0.5}, CALLS_TO_SETTLE + 100, seed)
    tail = picks[CALLS_TO_SETTLE:]
    # With a 10% exploration floor the poor model still gets ~5% of calls; the rest go to "good".
    assert tail.count("good") / len(tail) >= 0.85
    assert picks.count("poor") >= 5  # it was explored, not ignored


def test_weights_reflect_the_posteriors_and_keep_the_floor() -> None:
    w = router.weights([router.Arm("a", calls=100, reward=90), router.Arm("b", calls=100, reward=40)])
    assert w["a"] > 0.9 and w["b"] == pytest.approx(router.EXPLORATION / 2, abs=0.01)
    assert sum(w.values()) == pytest.approx(1.0)


@pytest.fixture
def two_models(trio: Trio) -> Iterator[tuple[LLMModel, LLMModel]]:
    router.clear_cache()
    yield chat_model("model-a"), chat_model("model-b")
    router.clear_cache()


def test_route_uses_ledger_quality_and_ratings(trio: Trio, two_models: tuple[LLMModel, LLMModel]) -> None:
    for _ in range(30):
        make_call(model_name="model-a", outcome="ok", total_ms=500.0)
        bad = make_call(model_name="model-b", outcome="error", error_class="schema_validation")
        Feedback.objects.create(team=trio.team, user=trio.owner, feature="x", target=f"b:{bad.pk}", rating=-1, call=bad)
    arms = {a.name: a for a in router.arms_for("main", ["model-a", "model-b"])}
    assert arms["model-a"].calls == 30 and arms["model-a"].reward == pytest.approx(30 * (1 - 0.3 * 500 / 20_000))
    assert arms["model-b"].reward == 0 and arms["model-b"].down == 30
    chosen = [router.route("main", CallContext(feature="x")) for _ in range(40)]
    assert all(c is not None for c in chosen)
    names = [c[0].name for c in chosen if c]
    assert names.count("model-a") >= 30
    decision = chosen[0][1] if chosen[0] else {}
    assert decision["strategy"] in {"thompson", "explore"} and decision["reason"] and decision["role"] == "main"
    table = {r["role"]: r for r in router.role_table()}
    weights = {a["name"]: a["weight"] for a in table["main"]["arms"]}
    assert weights["model-a"] > 0.9


def test_pin_overrides_and_unpin_restores(trio: Trio, two_models: tuple[LLMModel, LLMModel]) -> None:
    services.routing_pin_set(role="main", model=two_models[1], user=trio.owner)
    model, info = router.route("main", CallContext()) or (None, {})
    assert model == two_models[1] and info["strategy"] == "pinned"
    services.routing_pin_set(role="main", model=None, user=trio.owner)
    assert not Setting.objects.filter(key="routing.pin.main").exists()
    _, info = router.route("main", CallContext()) or (None, {})
    assert info["strategy"] in {"thompson", "explore"}


def test_single_model_embedding_and_errors_fall_back_to_the_default(trio: Trio) -> None:
    router.clear_cache()
    chat_model("only-one")
    assert router.route("main", CallContext()) is None
    assert router.route("embedding", CallContext()) is None
    # Inconsistent stats (two models, no arms) make choose() raise: the call must still go through.
    broken = [chat_model("x-1", roles=["research"]), chat_model("x-2", roles=["research"])]
    router._cache["research"] = router._Entry(expires=float("inf"), models=broken, arms=[], pin=None)
    assert router.route("research", CallContext()) is None
    router.clear_cache()
