"""Every metric on fixed inputs, with exact values."""

from __future__ import annotations

import pytest

from analytics.quality import metrics as M
from analytics.quality import runner


def test_token_f1_counts_shared_tokens() -> None:
    assert M.token_f1("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert M.token_f1("The CAT, sat!", "the cat sat") == 1.0
    assert M.token_f1("dog", "cat") == 0.0
    assert M.token_f1("", "") == 1.0
    assert M.token_f1("", "cat") == 0.0
    # Repeated tokens count at most as often as in the reference: overlap 1, P = 1/3, R = 1.
    assert M.token_f1("the the the", "the") == pytest.approx(0.5)


def test_rouge_l_uses_the_longest_common_subsequence() -> None:
    assert M.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert M.rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    # Same bag of words, different order: F1 is perfect, ROUGE-L is not (LCS 2 of 3).
    assert M.token_f1("cat the sat", "the cat sat") == 1.0
    assert M.rouge_l("cat the sat", "the cat sat") == pytest.approx(2 / 3)
    assert M.rouge_l("a b", "c d") == 0.0
    assert M.rouge_l("", "") == 1.0


def test_recall_at_k_and_reciprocal_rank() -> None:
    retrieved = ["Alpha", "Beta", "Gamma", "beta"]
    assert M.recall_at_k(retrieved, ["gamma", "Delta"], 2) == 0.0
    assert M.recall_at_k(retrieved, ["gamma", "Delta"], 3) == 0.5
    assert M.recall_at_k(retrieved, [" BETA "], 2) == 1.0
    assert M.recall_at_k(retrieved, [], 3) == 0.0
    assert M.reciprocal_rank(retrieved, ["gamma"]) == pytest.approx(1 / 3)
    assert M.reciprocal_rank(retrieved, ["Beta", "Gamma"]) == 0.5
    assert M.reciprocal_rank(retrieved, ["Zeta"]) == 0.0
    assert M.mean([1.0, 0.5, 0.0, None]) == 0.5  # MRR over three items; None is "not measured"


def test_citation_precision() -> None:
    assert M.citation_precision(["A", "B", "a"], ["a"]) == 0.5
    assert M.citation_precision(["A"], ["a", "b"]) == 1.0
    assert M.citation_precision([], ["a"]) == 0.0


def test_complexity_tolerance_and_mae() -> None:
    assert M.within_tolerance(8, 10) is True
    assert M.within_tolerance(12, 10) is True
    assert M.within_tolerance(7.9, 10) is False
    pairs = [(8.0, 10.0), (5.0, 10.0), (3.0, 3.0), (1.0, 2.0)]
    assert M.fraction_within(pairs) == 0.5
    assert M.mean_absolute_error(pairs) == 2.0
    assert M.fraction_within([]) == 0.0


def test_task_coverage_by_cosine_threshold() -> None:
    assert M.cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    assert M.cosine([3.0, 4.0], [3.0, 4.0]) == pytest.approx(1.0)
    expected = [[1.0, 0.0], [0.0, 1.0]]
    produced = [[1.0, 0.1]]
    assert M.task_coverage(expected, produced) == 0.5
    assert M.task_coverage(expected, produced, threshold=0.05) == 1.0
    assert M.task_coverage(expected, []) == 0.0
    assert M.COVERAGE_THRESHOLD == 0.7


def test_ratio_to_baseline_is_oriented_so_above_one_is_better() -> None:
    assert M.ratio(0.8, 1.0) == 0.8
    assert M.ratio(2.0, 1.0, lower_is_better=True) == 0.5
    assert M.ratio(0.0, 0.0, lower_is_better=True) == 1.0
    assert M.ratio(None, 1.0) is None
    assert M.ratio(1.0, 0.0) is None
    agg = runner.aggregate("complexity", [{"within_20": 1.0, "mae": 1.0}, {"within_20": 0.0, "mae": 3.0}])
    assert agg == {"within_20": 0.5, "mae": 2.0}
    assert runner.ratios("complexity", agg, {"within_20": 1.0, "mae": 1.0}) == {"within_20": 0.5, "mae": 0.5}
