"""Evidence over training seeds as well as prompts: a two-level bootstrap of the gain over a baseline.

One training run's paired interval (:mod:`harness.evaluation.paired`) covers which prompts were
asked, not how training happened to go, and retraining one configuration with another seed moves
its score by as much as the gains a sweep reports. With S runs of a configuration (training seeds)
that all answered the same prompts, each resample draws S seeds with replacement, then the prompts
(or whole question groups) with replacement: one prompt draw shared by every seed and by the
baseline. Shared, because the prompts are the same for every run, so their part of the noise does
not shrink with more seeds (drawing prompts afresh within each seed would pretend it does), and
because the baseline's answer to a prompt must stay paired with each run's answer to it.

Seeds are drawn from a stream of their own, so with one seed (and one baseline run) the prompt
draws, the mean and the interval are exactly :func:`~harness.evaluation.paired.paired_bootstrap`'s.
Pure: no I/O, numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from harness.evaluation.paired import (
    SAME,
    Column,
    PairedDiff,
    check_bootstrap,
    index_draws,
    keyed_rows,
    number_or_none,
    row_value,
)

ONE_RUN = "one training run: the interval ignores training noise"
Runs = Sequence[Sequence[float | None]]  # per run (training seed), one value per prompt
GROUP_COLUMN = "group"  # a per-example table column naming the question group an example belongs to


@dataclass(frozen=True)
class SeededDiff(PairedDiff):
    """A paired difference whose interval covers training seeds too: ``n`` prompts x ``n_seeds`` runs.

    ``seed_sd`` is the standard deviation over seeds of one run's mean difference (0 for one run).
    """

    n_seeds: int = 1
    seed_sd: float = 0.0

    @property
    def seeds_text(self) -> str:
        """``x 5 training seeds (seed sd 0.021)``, or that one run ignores training noise."""
        if self.n_seeds == 1:
            return ONE_RUN
        return f"x {self.n_seeds} training seeds (seed sd {self.seed_sd:.3g})"

    def describe(self) -> str:
        """E.g. ``+0.041 [90% CI +0.012, +0.070], n=40 x 5 training seeds (seed sd 0.021)``."""
        return f"{super().describe()} {self.seeds_text}"


def _matrix(runs: Runs, name: str) -> np.ndarray:
    if not runs:
        raise ValueError(f"no {name} run")
    if len({len(run) for run in runs}) != 1:
        raise ValueError(f"{name} runs differ in length: {sorted({len(run) for run in runs})}")
    values = [[math.nan if (x := number_or_none(v)) is None else x for v in run] for run in runs]
    return np.array(values, dtype=float).reshape(len(runs), -1)


def _t_within(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with ``df`` degrees of freedom (Abramowitz and Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2, total = math.cos(theta) ** 2, 0.0
    if df % 2:
        term = math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            total, term = total + term, term * cos2 * 2 * k / (2 * k + 1)
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term = 1.0
    for k in range(1, df // 2 + 1):
        total, term = total + term, term * cos2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


def t_quantile(level: float, df: int) -> float:
    """The t such that P(|T| < t) = ``level`` (bisection: numpy has no t distribution, and the
    harness no scipy)."""
    low, high = 0.0, 1e7
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if _t_within(middle, df) < level else (low, middle)
    return (low + high) / 2


def seed_widening(n_seeds: int, level: float) -> float:
    """How far each run's deviation from the mean run is stretched before seeds are resampled.

    Resampling S seeds shrinks their variance by (S-1)/S (hence sqrt(S/(S-1)), adjusted residuals:
    Davison and Hinkley 1997, 3.3), and a mean of S runs whose spread is itself estimated from them
    varies like Student's t with S-1 degrees of freedom, not like the normal a bootstrap mimics
    (hence t / z at the level). Measured on synthetic studies (tests/evaluation/test_seeds.py):
    with the seeds' noise dominant, 90% intervals from 3 seeds covered 67% plain, 74% with the
    first factor, 89% with both.
    """
    if n_seeds < 2:
        return 1.0
    z = NormalDist().inv_cdf((1 + level) / 2)
    return math.sqrt(n_seeds / (n_seeds - 1)) * t_quantile(level, n_seeds - 1) / z


def _widened(runs: np.ndarray, level: float) -> np.ndarray:
    """Runs whose deviations from the mean run are stretched by :func:`seed_widening`."""
    if runs.shape[0] == 1:
        return runs
    centre = runs.mean(axis=0)
    return centre + seed_widening(runs.shape[0], level) * (runs - centre)


def _seed_mix(runs: np.ndarray, rng: np.random.Generator, draws: int) -> np.ndarray:
    """``draws`` resamples of the mean run over seeds drawn with replacement: (draws, prompts)."""
    count = runs.shape[0]
    if count == 1:
        return runs  # (1, prompts): broadcasts, and leaves the values untouched
    picked = rng.integers(0, count, size=(draws, count))
    weights = (picked[:, :, None] == np.arange(count)).sum(axis=1)
    return weights @ runs / count


def _unit_sums(groups: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Prompt -> group membership (prompts x groups) and each group's size."""
    index: dict[Hashable, int] = {}
    ids = [index.setdefault(g, len(index)) for g in groups]
    members = np.zeros((len(ids), len(index)))
    members[np.arange(len(ids)), ids] = 1.0
    return members, members.sum(axis=0)


def seeded_bootstrap(
    candidate_runs: Runs,
    baseline_runs: Runs,
    *,
    groups: Sequence[Hashable] | None = None,
    level: float = 0.9,
    resamples: int,
    seed: int,
) -> SeededDiff:
    """Mean over runs and prompts of (candidate - baseline), with a two-level percentile interval.

    Every run holds one value per prompt, in one order. Baseline runs are resampled too (one run,
    as for the untuned base, stays put). ``groups`` (one id per prompt) resamples whole question
    groups instead of prompts. A prompt missing from any run is left out. ValueError when no prompt
    is complete, or the runs differ in length.
    """
    check_bootstrap(level, resamples)
    candidate, baseline = _matrix(candidate_runs, "candidate"), _matrix(baseline_runs, "baseline")
    if candidate.shape[1] != baseline.shape[1] or (groups is not None and len(groups) != candidate.shape[1]):
        raise ValueError(f"runs cover {candidate.shape[1]} and {baseline.shape[1]} prompts, groups {len(groups or [])}")
    complete = ~(np.isnan(candidate).any(axis=0) | np.isnan(baseline).any(axis=0))
    if not complete.any():
        raise ValueError("no prompt has a value in every run")
    candidate, baseline = candidate[:, complete], baseline[:, complete]
    diffs = candidate.mean(axis=0) - baseline.mean(axis=0)  # with one run each: exactly a - b
    n, n_seeds = diffs.size, candidate.shape[0]
    seed_sd = float(candidate.mean(axis=1).std(ddof=1)) if n_seeds > 1 else 0.0
    point = float(diffs.mean())
    if np.ptp(candidate[:, None, :] - baseline[None, :, :]) <= SAME:
        return SeededDiff(point, point, point, n, level, n_seeds, seed_sd)  # every resample is this point
    kept = None if groups is None else [g for g, keep in zip(groups, complete, strict=True) if keep]
    members, sizes = (None, None) if kept is None else _unit_sums(kept)
    seed_rng = np.random.default_rng([seed, 1])  # apart from the prompt draws (see the module's note)
    candidate, baseline = _widened(candidate, level), _widened(baseline, level)
    means = []
    for draw_units in index_draws(n if sizes is None else sizes.size, resamples, seed):
        rows = _seed_mix(candidate, seed_rng, len(draw_units)) - _seed_mix(baseline, seed_rng, len(draw_units))
        if members is not None and sizes is not None:
            sums = rows @ members
            sums = np.broadcast_to(sums, (len(draw_units), sums.shape[1]))
            means.append(np.take_along_axis(sums, draw_units, axis=1).sum(axis=1) / sizes[draw_units].sum(axis=1))
        elif rows.shape[0] == 1:
            means.append(rows[0][draw_units].mean(axis=1))
        else:
            means.append(np.take_along_axis(rows, draw_units, axis=1).mean(axis=1))
    low, high = np.quantile(np.concatenate(means), [(1 - level) / 2, (1 + level) / 2])
    return SeededDiff(point, float(low), float(high), n, level, n_seeds, seed_sd)


def compare_seeded_rows(
    candidate_tables: Sequence[Sequence[Mapping[str, Any]]],
    baseline_tables: Sequence[Sequence[Mapping[str, Any]]],
    column: Column,
    *,
    level: float,
    resamples: int,
    seed: int = 0,
) -> SeededDiff | None:
    """The two-level interval of (candidate - baseline) on ``column`` from per-example tables, one
    per run; examples paired by key (:func:`~harness.evaluation.paired.row_key`), kept when every
    table has them. Question groups when every kept row names one (``group``). None when no
    example has a value in every table."""
    keyed = [keyed_rows(t) for t in [*candidate_tables, *baseline_tables]]
    if not keyed:
        return None
    keys = [k for k in keyed[0] if all(k in other for other in keyed[1:])]
    values = [[row_value(table[k], column) for k in keys] for table in keyed]
    complete = [i for i in range(len(keys)) if all(run[i] is not None for run in values)]
    if not complete:
        return None
    values = [[run[i] for i in complete] for run in values]
    first = [keyed[0][keys[i]] for i in complete]
    groups = [row[GROUP_COLUMN] for row in first] if all(row.get(GROUP_COLUMN) is not None for row in first) else None
    split = len(candidate_tables)
    return seeded_bootstrap(values[:split], values[split:], groups=groups, level=level, resamples=resamples, seed=seed)
