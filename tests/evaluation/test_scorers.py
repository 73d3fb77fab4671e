from __future__ import annotations

import math

import pytest

from harness.evaluation.scorers import cosine, count_missing, mean_ignoring_missing, rouge_l


def test_rouge_l_identical_disjoint_and_partial() -> None:
    scores = rouge_l(
        ["use enumerate for index and value", "apples", "use enumerate please"],
        ["use enumerate for index and value", "kernels", "use enumerate for index and value"],
    )
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == 0.0
    assert 0.0 < scores[2] < 1.0


def test_rouge_l_stems_and_handles_empty() -> None:
    assert rouge_l(["it returns lists"], ["it return list"])[0] == pytest.approx(1.0)
    assert rouge_l([""], ["something"]) == [0.0]
    assert rouge_l([], []) == []


def test_rouge_l_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        rouge_l(["a", "b"], ["a"])


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert cosine([0.0, 0.0], [1.0, 2.0]) == 0.0
    with pytest.raises(ValueError):
        cosine([1.0], [1.0, 2.0])


def test_mean_ignoring_missing() -> None:
    assert mean_ignoring_missing([1.0, None, 3.0, math.nan]) == pytest.approx(2.0)
    assert mean_ignoring_missing([None, None]) is None
    assert mean_ignoring_missing([]) is None
    assert mean_ignoring_missing([0.0, None]) == 0.0  # a real zero is not missing
    assert count_missing([1.0, None, math.nan, 0.0]) == 2
