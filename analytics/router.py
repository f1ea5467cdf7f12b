"""Adaptive model routing: Thompson sampling over the models that can serve a role.

Registered with ``taskmaster.llm.set_router`` in ``AnalyticsConfig.ready``. For a role served by
two or more enabled, available models, each model's reward posterior is Beta(alpha, beta) built from
the ledger of the last ``ROUTER_WINDOW_DAYS``:

* every finished call adds its reward r to alpha and 1 - r to beta, where r = 0 for a failed call
  (schema validation failures included) and r = 1 - w·min(1, latency / reference) for a good one;
* each thumbs-up adds ``FEEDBACK_WEIGHT`` to alpha, each thumbs-down to beta.

With probability ``EXPLORATION`` (the floor) a uniformly random candidate is chosen; otherwise the
model with the highest posterior sample. An admin pin (``routing.pin.<role>`` setting) wins over
both. Stats are cached per process for a few seconds; any error falls back to the role default.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Case, Count, F, FloatField, Q, Sum, Value, When
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from taskmaster.llm.models import LLMCall, LLMModel, ModelKind, ModelRole
from taskmaster.llm.types import CallContext
from taskmaster.models import Feedback

log = logging.getLogger(__name__)

WINDOW_DAYS = 14
EXPLORATION = 0.1
LATENCY_WEIGHT = 0.3
LATENCY_REFERENCE_MS = 20_000.0
FEEDBACK_WEIGHT = 2.0
CACHE_SECONDS = 5.0
PIN_PREFIX = "routing.pin."

_rng = random.Random()


@dataclass
class Arm:
    name: str
    calls: int = 0
    reward: float = 0.0
    up: int = 0
    down: int = 0

    @property
    def alpha(self) -> float:
        return 1.0 + self.reward + FEEDBACK_WEIGHT * self.up

    @property
    def beta(self) -> float:
        return 1.0 + (self.calls - self.reward) + FEEDBACK_WEIGHT * self.down

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


def choose(arms: list[Arm], rng: random.Random, exploration: float = EXPLORATION) -> tuple[Arm, dict[str, Any]]:
    """One routing decision; pure, so simulations can drive it with a seeded RNG."""
    if rng.random() < exploration:
        arm = rng.choice(arms)
        return arm, {"strategy": "explore", "reason": f"exploration floor ({exploration:.0%}): random pick {arm.name}"}
    samples = {a.name: rng.betavariate(a.alpha, a.beta) for a in arms}
    arm = max(arms, key=lambda a: samples[a.name])
    ranked = ", ".join(f"{n} {s:.2f}" for n, s in sorted(samples.items(), key=lambda kv: -kv[1]))
    return arm, {
        "strategy": "thompson",
        "reason": f"highest Thompson sample ({ranked})",
        "samples": {n: round(s, 4) for n, s in samples.items()},
    }


def weights(arms: list[Arm], exploration: float = EXPLORATION, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """Probability that each arm is chosen next (Monte Carlo over the posteriors, plus the floor)."""
    if not arms:
        return {}
    rng = random.Random(seed)
    wins = dict.fromkeys((a.name for a in arms), 0)
    for _ in range(draws):
        best = max(arms, key=lambda a: rng.betavariate(a.alpha, a.beta))
        wins[best.name] += 1
    return {n: exploration / len(arms) + (1 - exploration) * w / draws for n, w in wins.items()}


def candidates(role: str) -> list[LLMModel]:
    kind = ModelKind.EMBEDDING if role == ModelRole.EMBEDDING else ModelKind.CHAT
    return list(
        LLMModel.objects.filter(enabled=True, available=True, kind=kind, roles__contains=[role]).order_by("name")
    )


def arms_for(role: str, names: list[str]) -> list[Arm]:
    since = timezone.now() - timedelta(days=WINDOW_DAYS)
    base = LLMCall.objects.filter(role=role, model_name__in=names, created_at__gte=since).exclude(outcome="cancelled")
    latency = Least(Coalesce(F("total_ms"), Value(LATENCY_REFERENCE_MS)) / Value(LATENCY_REFERENCE_MS), Value(1.0))
    reward = Case(
        When(outcome="ok", then=Value(1.0) - Value(LATENCY_WEIGHT) * latency),
        default=Value(0.0),
        output_field=FloatField(),
    )
    per_model: Any = base.values("model_name").annotate(n=Count("id"), r=Coalesce(Sum(reward), 0.0))
    stats: dict[str, dict[str, Any]] = {r["model_name"]: r for r in per_model}
    rated: Any = Feedback.objects.filter(call__in=base).values("call__model_name")
    votes: dict[str, dict[str, Any]] = {
        r["call__model_name"]: r
        for r in rated.annotate(up=Count("id", filter=Q(rating=1)), down=Count("id", filter=Q(rating=-1)))
    }
    return [
        Arm(
            name=n,
            calls=stats.get(n, {}).get("n", 0),
            reward=float(stats.get(n, {}).get("r", 0.0)),
            up=votes.get(n, {}).get("up", 0),
            down=votes.get(n, {}).get("down", 0),
        )
        for n in names
    ]


def pinned(role: str) -> str | None:
    from analytics.models import Setting

    value = Setting.objects.filter(team__isnull=True, key=PIN_PREFIX + role).values_list("value", flat=True).first()
    return value if isinstance(value, str) and value else None


@dataclass
class _Entry:
    expires: float
    models: list[LLMModel]
    arms: list[Arm]
    pin: str | None


_cache: dict[str, _Entry] = {}


def clear_cache() -> None:
    _cache.clear()


def _entry(role: str) -> _Entry:
    entry = _cache.get(role)
    if entry is None or entry.expires < time.monotonic():
        models = candidates(role)
        arms = arms_for(role, [m.name for m in models]) if len(models) > 1 else []
        entry = _Entry(time.monotonic() + CACHE_SECONDS, models, arms, pinned(role))
        _cache[role] = entry
    return entry


def route(role: str, ctx: CallContext) -> tuple[LLMModel, dict[str, Any]] | None:
    """The hook given to ``taskmaster.llm.set_router``; None means "use the role default"."""
    if role == ModelRole.EMBEDDING:
        return None  # models of different vector spaces are never interchangeable
    try:
        entry = _entry(role)
        by_name = {m.name: m for m in entry.models}
        if entry.pin and entry.pin in by_name:
            model = by_name[entry.pin]
            info: dict[str, Any] = {"strategy": "pinned", "reason": f"pinned by an admin for role {role}", "role": role}
        elif len(entry.models) < 2:
            return None
        else:
            arm, info = choose(entry.arms, _rng)
            info.update(
                {
                    "role": role,
                    "candidates": {
                        a.name: {"alpha": round(a.alpha, 2), "beta": round(a.beta, 2), "calls": a.calls}
                        for a in entry.arms
                    },
                }
            )
            model = by_name[arm.name]
        # The inference worker does not (yet) copy the routing dict onto the ledger row, but it
        # does store the context's metadata: keep a copy there so the decision is never lost.
        ctx.metadata["routing"] = dict(info, model=model.name)
        return model, info
    except Exception:
        log.exception("adaptive routing failed for role %s; using the role default", role)
        return None


def decision_of(call: LLMCall) -> dict[str, Any]:
    """The routing decision recorded for a ledger row (its ``routing`` field, else the metadata copy)."""
    if call.routing:
        return dict(call.routing)
    saved = (call.metadata or {}).get("routing")
    return dict(saved) if isinstance(saved, dict) else {}


def role_table() -> list[dict[str, Any]]:
    """Per role: candidates, posterior means and selection weights, for the dashboard."""
    out = []
    for role in ModelRole.values:
        if role == ModelRole.EMBEDDING:
            continue
        models = candidates(role)
        if not models:
            continue
        pin = pinned(role)
        arms = arms_for(role, [m.name for m in models])
        w = weights(arms) if len(arms) > 1 else {a.name: 1.0 for a in arms}
        out.append(
            {
                "role": role,
                "pin": pin if pin in {m.name for m in models} else None,
                "adaptive": len(models) > 1,
                "arms": [
                    {
                        "name": a.name,
                        "calls": a.calls,
                        "up": a.up,
                        "down": a.down,
                        "mean": a.mean,
                        "weight": 1.0 if pin == a.name else (0.0 if pin in w else w.get(a.name, 0.0)),
                    }
                    for a in arms
                ],
            }
        )
    return out
