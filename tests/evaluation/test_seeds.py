"""The two-level (seed x prompt) bootstrap: exact with one seed, near nominal coverage with several."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.evaluation.paired import paired_bootstrap
from harness.evaluation.seeds import SeededDiff, compare_seeded_rows, seed_widening, seeded_bootstrap, t_quantile


def simulated_study(
    rng: np.random.Generator, seeds: int, *, seed_sd: float, prompt_sd: float, noise_sd: float, prompts: int = 40
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Runs of one configuration whose true gain over the baseline is 0.05: each seed shifts a whole
    run, each prompt is easier or harder to gain on for every run, and each answer has its own noise."""
    baseline = rng.uniform(0.3, 0.6, prompts)
    prompt_gain = rng.normal(0, prompt_sd, prompts)
    runs = [
        baseline + 0.05 + prompt_gain + rng.normal(0, seed_sd) + rng.normal(0, noise_sd, prompts) for _ in range(seeds)
    ]
    return runs, [baseline]


def coverage(seeds: int, studies: int = 200, **noise: float) -> float:
    """How often the 90% interval holds the true gain, over ``studies`` simulated studies."""
    rng = np.random.default_rng(seeds)
    hits = 0
    for k in range(studies):
        runs, baseline = simulated_study(rng, seeds, **noise)
        diff = seeded_bootstrap(runs, baseline, level=0.9, resamples=400, seed=k)
        hits += diff.low <= 0.05 <= diff.high
    return hits / studies


def test_one_seed_is_exactly_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 57).tolist(), rng.uniform(0, 1, 57).tolist()
    a[3], b[9] = None, math.nan  # dropped on both sides alike
    seeded = seeded_bootstrap([a], [b], level=0.9, resamples=3000, seed=11)
    paired = paired_bootstrap(a, b, level=0.9, resamples=3000, seed=11)
    assert (seeded.n, seeded.n_seeds, seeded.seed_sd) == (paired.n, 1, 0.0)
    for ours, theirs in ((seeded.mean, paired.mean), (seeded.low, paired.low), (seeded.high, paired.high)):
        assert abs(ours - theirs) <= 1e-12
    assert "one training run: the interval ignores training noise" in seeded.describe()


@pytest.mark.parametrize(
    "noise",
    [
        {"seed_sd": 0.05, "prompt_sd": 0.02, "noise_sd": 0.02},  # training noise dominates
        {"seed_sd": 0.03, "prompt_sd": 0.1, "noise_sd": 0.05},  # both, as in the quickstart
    ],
)
def test_eight_seeds_cover_the_true_gain_close_to_nominally(noise: dict[str, float]) -> None:
    assert 0.85 <= coverage(8, **noise) <= 0.96


def test_one_run_misses_training_noise_and_prompt_noise_alone_is_covered() -> None:
    """What the seeds are for: a single run's interval covers the prompts, not the training."""
    assert coverage(1, seed_sd=0.05, prompt_sd=0.02, noise_sd=0.02) < 0.3
    assert 0.85 <= coverage(1, seed_sd=0.0, prompt_sd=0.1, noise_sd=0.05) <= 0.95


def test_seed_spread_widens_the_interval_and_is_reported() -> None:
    rng = np.random.default_rng(4)
    baseline = rng.uniform(0.3, 0.6, 40)
    gain = baseline + 0.05 + rng.normal(0, 0.02, 40)
    steady = seeded_bootstrap([gain, gain + 0.001, gain - 0.001], [baseline], resamples=1000, seed=0)
    shaky = seeded_bootstrap([gain, gain + 0.06, gain - 0.06], [baseline], resamples=1000, seed=0)
    assert steady.mean == pytest.approx(shaky.mean)
    assert shaky.high - shaky.low > 3 * (steady.high - steady.low)
    assert shaky.n_seeds == 3 and shaky.seed_sd == pytest.approx(0.06)
    assert "x 3 training seeds (seed sd 0.06)" in shaky.describe()


def test_the_seed_widening_is_students_t_over_the_normal_and_the_resampling_shrinkage() -> None:
    assert t_quantile(0.9, 1) == pytest.approx(6.3138, abs=1e-4)
    assert t_quantile(0.9, 2) == pytest.approx(2.9200, abs=1e-4)
    assert t_quantile(0.95, 7) == pytest.approx(2.3646, abs=1e-4)
    assert seed_widening(1, 0.9) == 1.0
    assert seed_widening(3, 0.9) == pytest.approx(math.sqrt(1.5) * 2.9200 / 1.6449, abs=1e-3)
    assert 1 < seed_widening(30, 0.9) < 1.06  # many seeds: hardly widened


def test_question_groups_are_resampled_whole() -> None:
    """Prompts of one group move together: resampling them one by one would understate the noise."""
    rng = np.random.default_rng(5)
    group_gain = np.repeat(rng.normal(0, 0.1, 8), 5)  # 8 groups of 5 near-identical questions
    baseline = rng.uniform(0.3, 0.6, 40)
    runs = [baseline + 0.05 + group_gain + rng.normal(0, 0.005, 40) for _ in range(2)]
    groups = np.repeat(np.arange(8), 5).tolist()
    by_prompt = seeded_bootstrap(runs, [baseline], resamples=1000, seed=0)
    by_group = seeded_bootstrap(runs, [baseline], groups=groups, resamples=1000, seed=0)
    assert by_group.mean == pytest.approx(by_prompt.mean)
    assert by_group.high - by_group.low > 1.5 * (by_prompt.high - by_prompt.low)


def test_identical_runs_give_their_point_and_bad_input_is_refused() -> None:
    same = seeded_bootstrap([[0.5, 0.7], [0.5, 0.7]], [[0.2, 0.4]], resamples=100, seed=0)
    assert (same.mean, same.low, same.high) == pytest.approx((0.3, 0.3, 0.3))
    with pytest.raises(ValueError, match="differ in length"):
        seeded_bootstrap([[0.5, 0.7], [0.5]], [[0.2, 0.4]], resamples=100, seed=0)
    with pytest.raises(ValueError, match="no prompt"):
        seeded_bootstrap([[None, 0.7]], [[0.2, None]], resamples=100, seed=0)


def test_tables_pair_by_example_and_carry_question_groups() -> None:
    def table(scores: list[float], group: bool = False) -> list[dict[str, object]]:
        return [{"id": i, "score": s, **({"group": i // 2} if group else {})} for i, s in enumerate(scores)]

    runs = [table([0.6, 0.7, 0.8, 0.9], group=True), table([0.7, 0.6, 0.9, 0.8], group=True)[::-1]]
    diff = compare_seeded_rows(runs, [table([0.5, 0.5, 0.5, 0.5])], "score", level=0.9, resamples=200)
    assert isinstance(diff, SeededDiff) and diff.n == 4 and diff.n_seeds == 2
    assert diff.mean == pytest.approx(0.25)
    assert compare_seeded_rows(runs, [table([])], "score", level=0.9, resamples=200) is None
