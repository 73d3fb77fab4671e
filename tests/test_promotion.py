"""The pure promotion gate: which objectives are per-example, and when an improvement is real."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config import ObjectiveConfig, PromotionConfig
from harness.evaluation.paired import PairedDiff
from harness.lifecycle.promotion import PerExample, decide, parse_metric, per_example, signed_interval

HELDOUT_ROUGE = ObjectiveConfig(metric="consistency/heldout/rouge_l", direction="maximize")


def test_parse_metric_reads_only_consistency_split_column() -> None:
    assert parse_metric("consistency/heldout/judge_structure") == ("heldout", "judge_structure")
    for other in ("eval_loss", "consistency/heldout", "consistency//x", "consistency/a/b/c", "objective/x/y"):
        assert parse_metric(other) is None


def test_per_example_single_metric_and_eval_loss() -> None:
    spec = per_example(HELDOUT_ROUGE)
    assert spec == PerExample("consistency/heldout/rouge_l", "maximize", "heldout", {"rouge_l": 1.0})
    assert spec.column == "rouge_l"
    assert per_example(ObjectiveConfig()) is None  # eval_loss
    assert per_example(ObjectiveConfig(metric="judge_calls")) is None


def test_per_example_composite_on_one_split_only() -> None:
    weights = {"consistency/train/structure": 0.6, "consistency/train/embedding": 0.4}
    spec = per_example(ObjectiveConfig(weights=weights, direction="maximize"))
    assert spec is not None and spec.name == "composite" and spec.split == "train"
    assert spec.column == {"structure": 0.6, "embedding": 0.4}
    mixed = {"consistency/train/structure": 0.5, "consistency/heldout/embedding": 0.5}
    assert per_example(ObjectiveConfig(weights=mixed)) is None
    with_loss = {"consistency/heldout/structure": 1.0, "eval_loss": -0.1}
    assert per_example(ObjectiveConfig(weights=with_loss)) is None


def test_per_example_multi_objective_uses_the_first() -> None:
    first_consistency = ObjectiveConfig(
        metrics=[{"metric": "consistency/heldout/judge", "direction": "maximize"}, {"metric": "eval_loss"}]
    )
    spec = per_example(first_consistency)
    assert spec is not None and (spec.split, spec.column, spec.direction) == ("heldout", "judge", "maximize")
    first_loss = ObjectiveConfig(
        metrics=[{"metric": "eval_loss"}, {"metric": "consistency/heldout/judge", "direction": "maximize"}]
    )
    assert per_example(first_loss) is None


def table(values: list[float], column: str = "rouge_l") -> list[dict]:
    return [{"question": f"q{i}", "reference": f"r{i}", "answer": "a", column: v} for i, v in enumerate(values)]


def noisy(n: int, shift: float, noise: float, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, n)
    return (base + shift + rng.normal(0, noise, n)).tolist(), base.tolist()


def gate(objective: ObjectiveConfig, candidate: list[float], champion: list[float], min_delta: float = 0.0):
    spec = per_example(objective)
    interval = signed_interval(spec, table(candidate), table(champion), PromotionConfig(min_delta=min_delta))
    name = objective.names[0]
    means = {name: float(np.mean(candidate))}, {name: float(np.mean(champion))}
    return decide(objective, *means, interval=interval, min_delta=min_delta, champion_label="version 3")


def test_an_improvement_inside_the_noise_is_refused() -> None:
    candidate, champion = noisy(20, 0.02, 0.2, seed=0)
    assert np.mean(candidate) > np.mean(champion)  # the old rule would have promoted it
    decision = gate(HELDOUT_ROUGE, candidate, champion)
    assert not decision.wins and decision.interval is not None
    assert decision.interval.low <= 0 < decision.interval.high
    assert decision.reason.startswith("does not beat the champion: consistency/heldout/rouge_l +")
    assert "vs version 3 is inside the noise" in decision.reason and "does not clear min_delta 0" in decision.reason
    assert "[90% CI" in decision.line and "n=20" in decision.line


def test_a_clear_improvement_is_accepted() -> None:
    candidate, champion = noisy(80, 0.1, 0.05, seed=1)
    decision = gate(HELDOUT_ROUGE, candidate, champion)
    assert decision.wins and decision.interval.low > 0
    assert decision.reason.startswith("beats the champion: consistency/heldout/rouge_l +0.")
    assert "[90% CI +" in decision.reason and "vs version 3 (min_delta 0;" in decision.reason


def test_min_delta_must_be_cleared_by_the_lower_bound() -> None:
    candidate, champion = noisy(80, 0.1, 0.05, seed=1)
    low = gate(HELDOUT_ROUGE, candidate, champion).interval.low
    assert gate(HELDOUT_ROUGE, candidate, champion, min_delta=low - 0.01).wins
    refused = gate(HELDOUT_ROUGE, candidate, champion, min_delta=low + 0.01)
    assert not refused.wins and f"min_delta {low + 0.01:g}" in refused.reason


def test_minimize_counts_a_lower_score_as_the_improvement() -> None:
    minimize = ObjectiveConfig(metric="consistency/heldout/rouge_l", direction="minimize")
    lower, higher = noisy(80, -0.1, 0.05, seed=2)
    decision = gate(minimize, lower, higher)
    assert decision.wins and decision.interval.mean == pytest.approx(0.1, abs=0.03)
    worse = gate(minimize, higher, lower)
    assert not worse.wins and worse.interval.high < 0 and "is no better" in worse.reason


def test_a_composite_is_compared_on_the_weighted_sum_per_example() -> None:
    objective = ObjectiveConfig(
        weights={"consistency/heldout/structure": 0.5, "consistency/heldout/detail": 0.5}, direction="maximize"
    )
    spec = per_example(objective)
    # structure up by 0.2 everywhere, detail down by 0.1 everywhere: the composite is up by 0.05.
    candidate = [{"id": i, "structure": 0.5 + 0.2, "detail": 0.4 - 0.1} for i in range(10)]
    champion = [{"id": i, "structure": 0.5, "detail": 0.4} for i in range(10)]
    interval = signed_interval(spec, candidate, champion, PromotionConfig())
    assert interval.low == interval.high == pytest.approx(0.05)


def test_eval_loss_keeps_the_strict_rule() -> None:
    loss = ObjectiveConfig()
    decision = decide(loss, {"eval_loss": 0.5}, {"eval_loss": 0.6}, interval=None, min_delta=0.1, champion_label="v1")
    assert decision.wins and decision.interval is None
    assert "eval_loss is not a per-example score: strict improvement rule" in decision.reason
    tie = decide(loss, {"eval_loss": 0.6}, {"eval_loss": 0.6}, interval=None, min_delta=0.0, champion_label="v1")
    assert not tie.wins and tie.reason.startswith("does not beat the champion: eval_loss=0.6 vs v1's eval_loss=0.6")
    baseline = decide(
        loss,
        {"eval_loss": 0.5},
        {"eval_loss": 0.6},
        interval=None,
        min_delta=0.0,
        champion_label="b",
        against="baseline",
    )
    assert baseline.wins and baseline.reason.startswith("beats the baseline: eval_loss=0.5 vs b's eval_loss=0.6")


def test_a_per_example_objective_without_an_interval_never_wins() -> None:
    # A better mean is no evidence: without the paired tables there is no promotion, and no fallback.
    name = "consistency/heldout/rouge_l"
    no_tables = decide(
        HELDOUT_ROUGE, {name: 0.9}, {name: 0.1}, interval=None, min_delta=0.0, champion_label="v1", why_no_interval="x"
    )
    assert not no_tables.wins and no_tables.interval is None
    assert no_tables.reason == "no per-example evidence against v1: x"


def test_an_interval_decides_even_against_the_means() -> None:
    # The decision follows the paired interval over the examples both scored, not the run means.
    name = "consistency/heldout/rouge_l"
    interval = PairedDiff(0.05, 0.02, 0.08, 30, 0.9)
    decision = decide(HELDOUT_ROUGE, {name: 0.4}, {name: 0.5}, interval=interval, min_delta=0.0, champion_label="v1")
    assert decision.wins and decision.interval == interval
