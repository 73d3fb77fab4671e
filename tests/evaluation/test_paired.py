"""The paired bootstrap and the alignment of two per-example tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.evaluation.paired import PairedDiff, align, compare_rows, paired_bootstrap, row_value


def test_identical_lists_give_a_zero_width_interval_at_zero() -> None:
    scores = [0.1, 0.7, 0.3, 0.9, 0.5]
    diff = paired_bootstrap(scores, list(scores))
    assert (diff.mean, diff.low, diff.high, diff.n) == (0.0, 0.0, 0.0, 5)
    assert not diff.excludes_zero


def test_a_constant_shift_gives_that_point_and_excludes_zero() -> None:
    b = [0.1, 0.2, 0.4, 0.8]
    diff = paired_bootstrap([x + 0.25 for x in b], b)
    assert diff.mean == pytest.approx(0.25) and diff.low == diff.high == diff.mean
    assert diff.excludes_zero and diff.clears(0.2) and not diff.clears(0.3)


def test_a_noisy_but_real_improvement_has_a_positive_lower_bound() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 200)
    better = base + 0.05 + rng.normal(0, 0.1, 200)
    diff = paired_bootstrap(better.tolist(), base.tolist(), level=0.95)
    assert diff.low > 0 and diff.low < diff.mean < diff.high and diff.level == 0.95
    assert diff.mean == pytest.approx(float(np.mean(better - base)))


def test_pure_noise_gives_an_interval_around_zero() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.5, 0.2, 60), rng.normal(0.5, 0.2, 60)
    diff = paired_bootstrap(a.tolist(), b.tolist())
    assert diff.low < 0 < diff.high and not diff.excludes_zero


def test_wider_level_gives_a_wider_interval_and_a_seed_repeats() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, 30).tolist(), rng.uniform(0, 1, 30).tolist()
    narrow, wide = paired_bootstrap(a, b, level=0.8), paired_bootstrap(a, b, level=0.99)
    assert wide.low < narrow.low and wide.high > narrow.high
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7) != paired_bootstrap(a, b, seed=8)


def test_missing_values_drop_their_pair() -> None:
    diff = paired_bootstrap([1.0, None, 3.0, math.nan, 5.0], [0.0, 2.0, 2.0, 1.0, None])
    assert diff.n == 2 and diff.mean == 1.0 and diff.low == diff.high == 1.0


def test_one_pair_is_a_point_and_no_pair_is_an_error() -> None:
    one = paired_bootstrap([0.7], [0.2])
    assert one.n == 1 and one.low == one.high == one.mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no pair"):
        paired_bootstrap([None, 1.0], [1.0, None])
    with pytest.raises(ValueError, match="no pair"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_as_metrics_and_negation() -> None:
    diff = PairedDiff(0.04, 0.01, 0.07, 40, 0.9)
    assert diff.as_metrics("delta") == {"delta": 0.04, "delta_ci_low": 0.01, "delta_ci_high": 0.07}
    assert diff.negated() == PairedDiff(-0.04, -0.07, -0.01, 40, 0.9)
    assert diff.describe() == "+0.04 [90% CI +0.01, +0.07], n=40"


def rows(*triples: tuple, column: str = "rouge_l") -> list[dict]:
    return [{"question": q, "reference": r, "answer": "-", column: v} for q, r, v in triples]


def test_align_by_question_and_reference_drops_unmatched_rows() -> None:
    a = rows(("q1", "r1", 0.5), ("q2", "r2", 0.6), ("only a", "r", 0.9))
    b = rows(("q2", "r2", 0.1), ("q1", "r1", 0.2), ("only b", "r", 0.0), ("q1", "other reference", 0.3))
    assert align(a, b, "rouge_l") == ([0.5, 0.6], [0.2, 0.1])


def test_align_by_id_when_rows_carry_one() -> None:
    a = [{"id": 1, "question": "q", "reference": "r", "s": 0.5}, {"id": 2, "question": "q", "reference": "r", "s": 0.7}]
    # A JSON round trip through pandas may turn ids into floats; the same example still pairs.
    b = [{"id": 2.0, "question": "q", "reference": "r", "s": 0.1}, {"id": 3, "question": "q", "reference": "r", "s": 0}]
    assert align(a, b, "s") == ([0.7], [0.1])


def test_repeated_examples_pair_in_order() -> None:
    a = rows(("q", "r", 0.1), ("q", "r", 0.2))
    b = rows(("q", "r", 0.3), ("q", "r", 0.4), ("q", "r", 0.5))
    assert align(a, b, "rouge_l") == ([0.1, 0.2], [0.3, 0.4])


def test_missing_or_non_numeric_values_are_none() -> None:
    a = [{"id": i, "s": v} for i, v in enumerate([0.5, None, "high", True, math.nan, math.inf])]
    b = [{"id": i, "s": 0.0} for i in range(6)] + [{"id": 9}]
    assert align(a, b, "s") == ([0.5, None, None, None, None, None], [0.0] * 6)
    assert align(a, [{"id": 0}], "s") == ([0.5], [None])


def test_a_weighted_column_is_the_weighted_sum_of_its_columns() -> None:
    weights = {"structure": 0.5, "rouge_l": 0.25}
    assert row_value({"structure": 0.8, "rouge_l": 0.4}, weights) == pytest.approx(0.5)
    assert row_value({"structure": 0.8, "rouge_l": None}, weights) is None


def test_compare_rows_is_none_without_a_scored_pair() -> None:
    a = rows(("q1", "r1", 0.9), ("q2", "r2", 0.8), ("q3", "r3", 0.7))
    b = rows(("q1", "r1", 0.4), ("q2", "r2", 0.3), ("q3", "r3", 0.2))
    diff = compare_rows(a, b, "rouge_l", level=0.9, resamples=500)
    assert diff is not None and diff.n == 3 and diff.low == diff.high == pytest.approx(0.5)
    assert compare_rows(a, b, "judge", level=0.9, resamples=500) is None
    assert compare_rows(a, rows(("elsewhere", "r", 0.1)), "rouge_l", level=0.9, resamples=500) is None
