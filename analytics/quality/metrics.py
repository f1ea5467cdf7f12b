"""Evaluation metrics: pure functions, no database, no model.

Conventions (documented because the literature varies):

* Text is compared as lower-cased ``\\w+`` tokens.
* ``token_f1`` is SQuAD's bag-of-tokens F1; ``rouge_l`` is the LCS-based F-measure (beta = 1).
  Both are 1.0 when prediction and reference are both empty, 0.0 when only one is.
* Document titles are compared case- and whitespace-insensitively.
* ``recall_at_k``: distinct relevant titles among the first ``k`` retrieved, over all relevant.
* ``reciprocal_rank``: 1/rank of the first relevant title, 0 if none; its mean over items is MRR.
* ``citation_precision``: cited documents that are relevant, over cited documents; an answer
  that cites nothing scores 0 (a grounded answer must cite).
* ``within_tolerance``: |predicted - reference| ≤ 20 % of the reference.
* ``task_coverage``: expected tasks whose best cosine similarity to any produced task is
  ≥ the threshold (0.7 by default), over expected tasks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

COVERAGE_THRESHOLD = 0.7
TOLERANCE = 0.2

_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def norm_title(title: str) -> str:
    return " ".join(title.lower().split())


def _distinct(titles: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for t in titles:
        n = norm_title(t)
        if n not in seen:
            seen.append(n)
    return seen


def recall_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int) -> float:
    wanted = set(_distinct(relevant))
    if not wanted:
        return 0.0
    top = set(_distinct(retrieved[:k]))
    return len(top & wanted) / len(wanted)


def reciprocal_rank(retrieved: Sequence[str], relevant: Iterable[str]) -> float:
    wanted = set(_distinct(relevant))
    for rank, title in enumerate(retrieved, start=1):
        if norm_title(title) in wanted:
            return 1.0 / rank
    return 0.0


def citation_precision(cited: Iterable[str], relevant: Iterable[str]) -> float:
    cited_docs = _distinct(cited)
    if not cited_docs:
        return 0.0
    wanted = set(_distinct(relevant))
    return sum(1 for c in cited_docs if c in wanted) / len(cited_docs)


def within_tolerance(predicted: float, reference: float, tolerance: float = TOLERANCE) -> bool:
    # A tiny epsilon so 8 vs 10 at 20 % counts as within despite float rounding.
    return abs(predicted - reference) <= tolerance * abs(reference) + 1e-9


def fraction_within(pairs: Sequence[tuple[float, float]], tolerance: float = TOLERANCE) -> float:
    if not pairs:
        return 0.0
    return sum(1 for p, r in pairs if within_tolerance(p, r, tolerance)) / len(pairs)


def mean_absolute_error(pairs: Sequence[tuple[float, float]]) -> float:
    if not pairs:
        return 0.0
    return sum(abs(p - r) for p, r in pairs) / len(pairs)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0:
        return 0.0
    return dot / (na * nb)


def task_coverage(
    expected: Sequence[Sequence[float]], produced: Sequence[Sequence[float]], threshold: float = COVERAGE_THRESHOLD
) -> float:
    if not expected:
        return 0.0
    matched = sum(1 for e in expected if produced and max(cosine(e, p) for p in produced) >= threshold)
    return matched / len(expected)


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def ratio(value: float | None, baseline: float | None, lower_is_better: bool = False) -> float | None:
    """Run over baseline, oriented so that > 1 is always better than the baseline."""
    if value is None or baseline is None:
        return None
    if lower_is_better:
        if value == 0:
            # A perfect run against an imperfect baseline has no finite ratio.
            return 1.0 if baseline == 0 else None
        return baseline / value
    if baseline == 0:
        return None
    return value / baseline
