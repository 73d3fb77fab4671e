"""Metric names: every key a user writes or reads formats and parses back to the same name."""

from __future__ import annotations

import pytest

from harness import metrics
from harness.metrics import CONSISTENCY, HELDOUT, STABILITY, TASK, TRAIN, MetricName, parse, try_parse

ROUGE = MetricName(CONSISTENCY, HELDOUT, "rouge_l")


def test_keys_as_users_write_them() -> None:
    assert ROUGE.key == "consistency/heldout/rouge_l"
    assert ROUGE.vs_baseline().key == "consistency/heldout/rouge_l_vs_baseline"
    assert ROUGE.interval_keys() == (
        "consistency/heldout/rouge_l_vs_baseline",
        "consistency/heldout/rouge_l_vs_baseline_ci_low",
        "consistency/heldout/rouge_l_vs_baseline_ci_high",
    )
    assert ROUGE.logged_keys() == ("consistency/heldout/rouge_l", *ROUGE.interval_keys())
    assert MetricName(TASK, TRAIN, "group_accuracy").key == "task/train/group_accuracy"
    assert MetricName(STABILITY, HELDOUT, "correct_agreement").short == "heldout/correct_agreement"
    assert ROUGE.vs_baseline().column == "rouge_l_vs_baseline"


@pytest.mark.parametrize(
    "key",
    [
        "consistency/heldout/rouge_l",
        "consistency/train/consistency_vs_baseline",
        "consistency/heldout/judge_vs_baseline_ci_low",
        "consistency/heldout/judge_missing_vs_baseline_ci_high",
        "consistency/answers/judge_structure",
        "task/heldout/accuracy_vs_baseline",
        "stability/train/sampled_agreement",
    ],
)
def test_every_key_parses_back_to_itself(key: str) -> None:
    name = parse(key)
    assert name.key == key
    assert parse(name.base.key) == name.base
    assert parse(name.vs_baseline().key).suffix == "vs_baseline"


def test_a_suffix_is_split_from_the_scorer() -> None:
    assert parse("consistency/heldout/judge_missing_vs_baseline_ci_low") == MetricName(
        CONSISTENCY, HELDOUT, "judge_missing", "vs_baseline_ci_low"
    )
    assert parse("consistency/heldout/judge_missing").suffix is None


@pytest.mark.parametrize(
    "key",
    [
        "eval_loss",
        "consistency/heldout",
        "consistency//rouge_l",
        "consistency/heldout/",
        "consistency/a/b/c",
        "objective/heldout/x",
        "consistency/validation/rouge_l",
        "consistency/heldout/_vs_baseline",
    ],
)
def test_a_bad_key_raises_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match="is not a metric name") as raised:
        parse(key)
    assert repr(key) in str(raised.value)
    assert try_parse(key) is None


def test_a_bad_name_raises_naming_its_key() -> None:
    with pytest.raises(ValueError, match="'consistency/heldout/x_vs_baseline' is not a metric name"):
        MetricName(CONSISTENCY, HELDOUT, "x_vs_baseline")
    with pytest.raises(ValueError, match="suffix"):
        MetricName(CONSISTENCY, HELDOUT, "x", "ci_low")


def test_judge_scores_and_other_metric_names() -> None:
    assert MetricName(CONSISTENCY, HELDOUT, metrics.judge_criterion("content")).is_judge
    assert MetricName(CONSISTENCY, HELDOUT, metrics.JUDGE_MISSING).is_judge
    assert not MetricName(CONSISTENCY, HELDOUT, "judgement").is_judge
    assert metrics.objective_key() == "objective"
    assert metrics.objective_key("a") == "objective/a"
    assert metrics.objective_of("objective/a") == "a"
    assert metrics.objective_of("objective") is None and metrics.objective_of("consistency/heldout/x") is None
    assert metrics.judge_check_key("judge", "overall", "gap") == "judge_check/judge/overall/gap"
    assert metrics.interval_keys("delta") == ("delta", "delta_ci_low", "delta_ci_high")
