"""Pattern recognition over the ledger: which groups of calls stand out, with a significance test.

Groups are cells of one or two dimensions (model, feature, prompt-template version, input-size
bucket). For failures and for thumbs-down ratings the detector works greedily: it tests every
group's rate against the rest with a one-sided two-proportion z-test (Bonferroni-corrected over
the groups tested), reports the most significant group, removes its rows as "explained", and
repeats. Removing explained rows keeps a bad (model, feature) cell from also being reported as a
bad model and a bad feature. Separately, per model, time to first token is correlated with the
prompt length (Pearson r, Fisher-z test).

This module only reads; ``analytics.services.patterns_run`` stores the results as Findings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Q

from analytics.stats import pearson, two_proportion_z
from taskmaster.models import Feedback, LLMCall, Team

WINDOW_DAYS = 7
ALPHA = 0.001
MIN_RATIO = 1.5
MIN_DIFF = 0.05
MAX_ROWS = 200_000
TTFT_MIN_R = 0.5
TTFT_MIN_SLOPE_MS_PER_1K = 50.0

# Input size by characters (≈ 4 characters a token).
SIZE_EDGES: list[tuple[str, int, int | None]] = [
    ("xs", 0, 1_000),
    ("s", 1_000, 4_000),
    ("m", 4_000, 16_000),
    ("l", 16_000, 64_000),
    ("xl", 64_000, None),
]
SIZE_LABELS = {"xs": "< 1k chars", "s": "1k-4k chars", "m": "4k-16k chars", "l": "16k-64k chars", "xl": "≥ 64k chars"}
FAMILIES: list[tuple[str, ...]] = [
    ("model",),
    ("feature",),
    ("size",),
    ("feature", "template"),
    ("model", "feature"),
    ("feature", "size"),
]
DIM_ORDER = ["model", "feature", "template", "size", "role"]


def size_bucket(chars: int) -> str:
    for name, lo, hi in SIZE_EDGES:
        if chars >= lo and (hi is None or chars < hi):
            return name
    return "xl"


def size_bounds(bucket: str) -> tuple[int, int | None]:
    for name, lo, hi in SIZE_EDGES:
        if name == bucket:
            return lo, hi
    raise ValueError(f"unknown size bucket {bucket!r}")


def subject_of(dims: dict[str, str]) -> str:
    return ", ".join(f"{k}={dims[k]}" for k in DIM_ORDER if k in dims)


def dims_q(dims: dict[str, str], prefix: str = "") -> Q:
    """The ledger rows of a group, as a Q (``prefix`` e.g. "call__" when filtering Feedback)."""
    columns = {"model": "model_name", "feature": "feature", "template": "template_version", "role": "role"}
    q = Q()
    for key, value in dims.items():
        if key == "size":
            lo, hi = size_bounds(value)
            q &= Q(**{f"{prefix}input_chars__gte": lo})
            if hi is not None:
                q &= Q(**{f"{prefix}input_chars__lt": hi})
        else:
            q &= Q(**{f"{prefix}{columns[key]}": value})
    return q


@dataclass
class Row:
    dims: dict[str, str]
    bad: bool
    error_class: str = ""
    schema: str = ""
    role: str = ""
    completion_tokens: int = 0
    prompt_tokens: int = 0


@dataclass
class Draft:
    kind: str
    dims: dict[str, str]
    summary: str
    p_value: float
    effect_size: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return subject_of(self.dims)


def _group_key(row: Row, family: tuple[str, ...]) -> tuple[str, ...] | None:
    values = tuple(row.dims.get(d, "") for d in family)
    return None if any(v == "" for v in values) else values


def greedy_groups(
    rows: list[Row], *, min_n: int, min_bad: int, alpha: float = ALPHA, max_findings: int = 25
) -> list[tuple[dict[str, str], list[Row], Any, int]]:
    """Repeatedly pick the most significant over-represented group and explain its rows away.

    Returns (dims, rows of the group, test, groups tested) per reported group.
    """
    active = list(rows)
    tested = 0
    for family in FAMILIES:
        sizes = Counter(_group_key(r, family) for r in rows)
        tested += sum(1 for key, n in sizes.items() if key is not None and n >= min_n)
    threshold = alpha / max(tested, 1)
    out: list[tuple[dict[str, str], list[Row], Any, int]] = []
    while active and len(out) < max_findings:
        total_n, total_bad = len(active), sum(r.bad for r in active)
        best: tuple[float, int, dict[str, str], Any] | None = None
        for family in FAMILIES:
            counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
            for r in active:
                key = _group_key(r, family)
                if key is not None:
                    counts[key][0] += 1
                    counts[key][1] += r.bad
            for key, (n, bad) in counts.items():
                if n < min_n or bad < min_bad or n == total_n:
                    continue
                test = two_proportion_z(bad, n, total_bad - bad, total_n - n)
                if test.p_value >= threshold or test.ratio < MIN_RATIO or test.rate_in - test.rate_out < MIN_DIFF:
                    continue
                # Most significant first; on a tie the simpler (fewer dimensions) explanation.
                rank = (test.z, -len(family))
                if best is None or rank > (best[0], best[1]):
                    best = (test.z, -len(family), dict(zip(family, key, strict=True)), test)
        if best is None:
            break
        dims, test = best[2], best[3]
        members = [r for r in active if all(r.dims.get(k) == v for k, v in dims.items())]
        out.append((dims, members, test, tested))
        active = [r for r in active if not all(r.dims.get(k) == v for k, v in dims.items())]
    return out


def _ledger(team: Team | None, since: datetime, until: datetime) -> Iterable[dict[str, Any]]:
    qs = LLMCall.objects.filter(created_at__gte=since, created_at__lt=until, kind="chat").exclude(outcome="cancelled")
    if team is not None:
        qs = qs.filter(team=team)
    return cast(
        Iterable[dict[str, Any]],
        qs.order_by("-created_at").values(
            "id",
            "model_name",
            "feature",
            "template_version",
            "input_chars",
            "prompt_tokens",
            "completion_tokens",
            "outcome",
            "error_class",
            "schema_name",
            "role",
            "ttft_ms",
        )[:MAX_ROWS],
    )


def _dims(c: dict[str, Any]) -> dict[str, str]:
    return {
        "model": c["model_name"],
        "feature": c["feature"],
        "template": c["template_version"] or "",
        "size": size_bucket(c["input_chars"] or 0),
    }


def _top(counter: Counter[str]) -> tuple[str, float]:
    if not counter:
        return "", 0.0
    value, n = counter.most_common(1)[0]
    return value, n / sum(counter.values())


def _describe(dims: dict[str, str]) -> str:
    parts = []
    for k in DIM_ORDER:
        if k in dims:
            value = SIZE_LABELS.get(dims[k], dims[k]) if k == "size" else dims[k]
            parts.append(f"{'inputs' if k == 'size' else k} {value}")
    return ", ".join(parts)


def detect(
    team: Team | None,
    *,
    until: datetime,
    window_days: int = WINDOW_DAYS,
    progress: Callable[[int, str], None] | None = None,
) -> list[Draft]:
    since = until - timedelta(days=window_days)
    ledger = list(_ledger(team, since, until))
    rows: list[Row] = []
    by_id: dict[Any, dict[str, Any]] = {}
    for c in ledger:
        by_id[c["id"]] = c
        rows.append(
            Row(
                dims=_dims(c),
                bad=c["outcome"] == "error",
                error_class=c["error_class"],
                schema=c["schema_name"],
                role=c["role"],
                completion_tokens=c["completion_tokens"],
                prompt_tokens=c["prompt_tokens"],
            )
        )
    drafts: list[Draft] = []
    if progress:
        progress(1, f"Testing failure rates over {len(rows)} calls")
    for dims, members, test, tested in greedy_groups(rows, min_n=20, min_bad=5):
        bad = [r for r in members if r.bad]
        err, err_share = _top(Counter(r.error_class for r in bad))
        schema, _ = _top(Counter(r.schema for r in bad if r.schema))
        role, _ = _top(Counter(r.role for r in members if r.role))
        drafts.append(
            Draft(
                kind="failure_rate",
                dims=dims,
                p_value=test.p_value,
                effect_size=test.ratio,
                summary=(
                    f"{_describe(dims)}: {test.rate_in:.0%} of calls fail vs {test.rate_out:.0%} elsewhere "
                    f"({test.ratio:.1f}x), mostly {err or 'unclassified'}"
                ),
                evidence={
                    "calls": len(members),
                    "failures": len(bad),
                    "rate": test.rate_in,
                    "rate_elsewhere": test.rate_out,
                    "z": test.z,
                    "groups_tested": tested,
                    "test": "one-sided two-proportion z-test, Bonferroni",
                    "error_class": err,
                    "error_class_share": err_share,
                    "schema": schema,
                    "role": role,
                    "max_completion_tokens": max((r.completion_tokens for r in bad), default=0),
                    "error_classes": dict(Counter(r.error_class for r in bad).most_common(5)),
                },
            )
        )
    if progress:
        progress(2, "Testing ratings")
    rated: list[Row] = []
    votes = Feedback.objects.filter(call_id__in=list(by_id)).values_list("call_id", "rating")
    for call_id, rating in votes:
        c = by_id[call_id]
        rated.append(Row(dims=_dims(c), bad=rating < 0, role=c["role"]))
    for dims, members, test, tested in greedy_groups(rated, min_n=10, min_bad=4):
        role, _ = _top(Counter(r.role for r in members if r.role))
        down = sum(r.bad for r in members)
        drafts.append(
            Draft(
                kind="low_rating",
                dims=dims,
                p_value=test.p_value,
                effect_size=test.ratio,
                summary=(
                    f"{_describe(dims)}: {test.rate_in:.0%} thumbs-down vs {test.rate_out:.0%} elsewhere "
                    f"({down} of {len(members)} ratings)"
                ),
                evidence={
                    "ratings": len(members),
                    "down": down,
                    "rate": test.rate_in,
                    "rate_elsewhere": test.rate_out,
                    "z": test.z,
                    "groups_tested": tested,
                    "role": role,
                    "test": "one-sided two-proportion z-test, Bonferroni",
                },
            )
        )
    if progress:
        progress(3, "Correlating time to first token with context length")
    per_model: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for c in ledger:
        if c["outcome"] == "ok" and c["ttft_ms"] is not None and c["prompt_tokens"]:
            per_model[c["model_name"]].append((float(c["prompt_tokens"]), float(c["ttft_ms"])))
    eligible = {m: pts for m, pts in per_model.items() if len(pts) >= 30}
    for model, pts in sorted(eligible.items()):
        corr = pearson([p[0] for p in pts], [p[1] for p in pts])
        slope_1k = corr.slope * 1000
        if corr.p_value < ALPHA / len(eligible) and corr.r >= TTFT_MIN_R and slope_1k >= TTFT_MIN_SLOPE_MS_PER_1K:
            xs = sorted(p[0] for p in pts)
            drafts.append(
                Draft(
                    kind="ttft_context",
                    dims={"model": model},
                    p_value=corr.p_value,
                    effect_size=corr.r,
                    summary=(
                        f"model {model}: time to first token grows with context length "
                        f"(r = {corr.r:.2f}, +{slope_1k:,.0f} ms per 1k prompt tokens)"
                    ),
                    evidence={
                        "calls": corr.n,
                        "r": corr.r,
                        "slope_ms_per_1k_tokens": slope_1k,
                        "intercept_ms": corr.intercept,
                        "median_prompt_tokens": xs[len(xs) // 2],
                        "p95_prompt_tokens": xs[int(len(xs) * 0.95) - 1] if len(xs) > 1 else xs[0],
                        "test": "Pearson r, one-sided Fisher z, Bonferroni over models",
                    },
                )
            )
    return drafts
