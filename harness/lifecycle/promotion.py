"""The promotion gate, pure: does the candidate beat the champion by more than the noise?

When the objective is a per-example score (a consistency scorer's mean on one split, task accuracy,
or a weighted sum of such scores on one split), both models' answers to the same prompts are compared pair by pair,
and the candidate wins only when the lower end of the paired interval of its improvement clears
``promotion.min_delta``. A difference of means over a few dozen examples is mostly noise; without
this, every lucky trial would take the alias. So without both per-example tables there is no
promotion at all: no evidence, no win. Anything else (eval_loss, say) has no per-example values,
and keeps the strict-improvement rule. The opponent is the alias's holder, or for the first
holder the untuned baseline, by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.config import ObjectiveConfig, PromotionConfig
from harness.evaluation.paired import Column, PairedDiff
from harness.evaluation.seeds import ONE_RUN, SeededDiff, compare_seeded_rows
from harness.evaluation.task import PER_EXAMPLE_COLUMN
from harness.metrics import CONSISTENCY, TASK, try_parse


@dataclass(frozen=True)
class PerExample:
    """How to compute the objective from one row of a split's table: ``weights`` maps a column
    to its weight (a single metric is one column of weight 1)."""

    name: str  # the objective as the study names it (a metric key, or "composite")
    direction: str
    split: str
    weights: Mapping[str, float]

    @property
    def column(self) -> Column:
        """A column name for a single metric, the weights for a composite."""
        if len(self.weights) == 1 and next(iter(self.weights.values())) == 1.0:
            return next(iter(self.weights))
        return dict(self.weights)


def parse_metric(metric: str) -> tuple[str, str] | None:
    """A consistency score's (split, column of the split's table); a task score's (split, the
    per-example column it is the mean of: ``correct`` for accuracy); None for any other metric."""
    name = try_parse(metric)
    if name is not None and name.family == CONSISTENCY:
        return name.split, name.column
    if name is not None and name.family == TASK and name.suffix is None and name.scorer in PER_EXAMPLE_COLUMN:
        return name.split, PER_EXAMPLE_COLUMN[name.scorer]
    return None


def per_example(objective: ObjectiveConfig) -> PerExample | None:
    """The objective (the first one when multi-objective) as a per-example score, or None."""
    if objective.metrics:
        first = objective.metrics[0]
        name, direction, terms = first.metric, first.direction, {first.metric: 1.0}
    elif objective.weights:
        name, direction, terms = "composite", objective.direction, dict(objective.weights)
    else:
        name, direction, terms = objective.metric, objective.direction, {objective.metric: 1.0}
    parsed = [parse_metric(metric) for metric in terms]
    if not parsed or any(p is None for p in parsed):
        return None
    splits = {p[0] for p in parsed if p is not None}
    if len(splits) != 1:
        return None  # a composite across splits has no single row to compute it from
    weights = {p[1]: weight for p, weight in zip(parsed, terms.values(), strict=True) if p is not None}
    return PerExample(name, direction, splits.pop(), weights)


def signed_interval(
    spec: PerExample,
    candidate_rows: Sequence[Mapping[str, Any]],
    champion_rows: Sequence[Mapping[str, Any]],
    settings: PromotionConfig,
    seed: int = 0,
) -> SeededDiff | None:
    """The paired interval of the candidate's improvement from one run each (better is positive
    whatever the direction); None when the tables share no example with both values."""
    level, resamples = settings.confidence_level, settings.bootstrap_resamples
    return signed_seeded_interval(spec, [candidate_rows], [champion_rows], level=level, resamples=resamples, seed=seed)


def signed_seeded_interval(
    spec: PerExample,
    candidate_tables: Sequence[Sequence[Mapping[str, Any]]],
    opponent_tables: Sequence[Sequence[Mapping[str, Any]]],
    *,
    level: float,
    resamples: int,
    seed: int = 0,
) -> SeededDiff | None:
    """The improvement of the candidate's runs (training seeds of one configuration) over the
    opponent's, over seeds and prompts (:mod:`harness.evaluation.seeds`), better is +. With one
    run each it is the paired bootstrap's interval exactly."""
    diff = compare_seeded_rows(
        candidate_tables, opponent_tables, spec.column, level=level, resamples=resamples, seed=seed
    )
    return diff.negated() if diff is not None and spec.direction == "minimize" else diff


@dataclass(frozen=True)
class Decision:
    """The gate's verdict and why; ``interval`` when the paired rule decided."""

    wins: bool
    reason: str
    interval: PairedDiff | None = None
    line: str = ""  # the interval in one line, for display


def strictly_better(candidate: float, champion: float, direction: str) -> bool:
    return candidate < champion if direction == "minimize" else candidate > champion


def _seeds(interval: PairedDiff) -> str:
    """`` x 3 training seeds (seed sd 0.021)`` when the candidate's runs are several, else nothing."""
    return f" {interval.seeds_text}" if isinstance(interval, SeededDiff) and interval.n_seeds > 1 else ""


def interval_text(spec: PerExample, interval: PairedDiff) -> str:
    """E.g. ``<objective> +0.041 [90% CI +0.012, +0.070]``."""
    return f"{spec.name} {interval.mean:+.3g} [{interval.level:.0%} CI {interval.low:+.3g}, {interval.high:+.3g}]"


def decide_paired(
    spec: PerExample, interval: PairedDiff, *, min_delta: float, champion_label: str, against: str = "champion"
) -> Decision:
    """Wins only when the whole interval of the improvement lies above ``min_delta``."""
    basis = f"n={interval.n} paired examples on {spec.split}{_seeds(interval)}, better is +"
    if not isinstance(interval, SeededDiff) or interval.n_seeds == 1:
        basis += f"; {ONE_RUN}"
    line = f"{interval_text(spec, interval)} vs {champion_label} (min_delta {min_delta:g}; {basis})"
    if interval.clears(min_delta):
        return Decision(True, f"beats the {against}: {line}", interval, line)
    bounds = f"[{interval.low:+.3g}, {interval.high:+.3g}]"
    verdict = "inside the noise" if interval.high > min_delta else "no better"
    reason = (
        f"does not beat the {against}: {spec.name} {interval.mean:+.3g} vs {champion_label} is {verdict}: "
        f"{bounds} does not clear min_delta {min_delta:g} ({interval.level:.0%} CI; {basis})"
    )
    return Decision(False, reason, interval, line)


def decide_strict(
    objective: ObjectiveConfig,
    candidate: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    champion_label: str,
    why: str,
    against: str = "champion",
) -> Decision:
    """For objectives with no per-example values: strictly better on the first objective (as
    select_best ranks trials)."""
    name, direction = objective.names[0], objective.directions[0]
    verdict = f"{name}={candidate[name]:.4g} vs {champion_label}'s {name}={champion[name]:.4g} ({why})"
    if strictly_better(candidate[name], champion[name], direction):
        return Decision(True, f"beats the {against}: {verdict}")
    return Decision(False, f"does not beat the {against}: {verdict}")


def decide(
    objective: ObjectiveConfig,
    candidate: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    interval: PairedDiff | None,
    min_delta: float,
    champion_label: str,
    why_no_interval: str = "",
    against: str = "champion",
) -> Decision:
    """The paired rule for a per-example objective (no interval: no promotion, saying why), the
    strict rule for any other. ``against``: "champion", or "baseline" for the first holder."""
    spec = per_example(objective)
    if spec is None:
        why = f"{objective.names[0]} is not a per-example score: strict improvement rule"
        return decide_strict(objective, candidate, champion, champion_label=champion_label, why=why, against=against)
    if interval is None:
        return Decision(False, f"no per-example evidence against {champion_label}: {why_no_interval or 'no interval'}")
    return decide_paired(spec, interval, min_delta=min_delta, champion_label=champion_label, against=against)
