"""Pure: which trial is best, what a run's objective values are, when two runs are comparable.

One rule everywhere: the sweep's best trial, registration and promotion all read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from harness.config import ObjectiveConfig
from harness.lifecycle.promotion import strictly_better
from harness.metrics import try_parse
from harness.objective import ObjectiveMetricMissing, objective_value
from harness.tracking import TAG_DATASET, TAG_EVAL_DIGEST


def _signed(trial: FrozenTrial, directions: Sequence[str]) -> list[float]:
    return [v if d == "minimize" else -v for v, d in zip(trial.values, directions, strict=True)]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def select_best(trials: Sequence[FrozenTrial], objective: ObjectiveConfig) -> FrozenTrial | None:
    """Pure: the best COMPLETE trial with finite objective values, or None.

    Multi-objective: among the Pareto front, the best on the *first* objective (ties: the lower
    trial number). The same rule decides promotions, so the two never disagree.
    """
    directions = objective.directions
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values is not None
        and len(t.values) == len(directions)
        and all(math.isfinite(v) for v in t.values)
    ]
    signed = {t.number: _signed(t, directions) for t in done}
    front = [t for t in done if not any(_dominates(signed[o.number], signed[t.number]) for o in done)]
    return min(front, key=lambda t: (signed[t.number][0], t.number), default=None)


def objective_scores(metrics: Mapping[str, float], objective: ObjectiveConfig) -> dict[str, float]:
    """Pure: objective name -> value from a run's metrics; empty when a metric is missing."""
    try:
        value = objective_value(objective, metrics)
    except ObjectiveMetricMissing:
        return {}
    values = value if isinstance(value, list) else [value]
    return dict(zip(objective.names, values, strict=True))


def evaluation_only(objective: ObjectiveConfig) -> bool:
    """Whether every objective metric comes from the evaluation (consistency, task or stability
    scores, so re-evaluation can reproduce them); eval_loss, say, comes from training and cannot."""
    return all(try_parse(n) is not None for n in objective.inputs)


@dataclass(frozen=True)
class Scores:
    """A model's objective values and where they were measured."""

    run_id: str
    values: dict[str, float]
    eval_digest: str = ""
    dataset_digest: str = ""

    @classmethod
    def of_run(cls, run: Any, objective: ObjectiveConfig) -> Scores:
        tags = run.data.tags
        values = objective_scores(run.data.metrics, objective)
        return cls(run.info.run_id, values, tags.get(TAG_EVAL_DIGEST, ""), tags.get(TAG_DATASET, ""))

    def comparable(self, other: Scores, objective: ObjectiveConfig) -> bool:
        """Same evaluation (and, for training metrics such as eval_loss, the same data)."""
        if not self.values or not other.values or self.eval_digest != other.eval_digest:
            return False
        return evaluation_only(objective) or self.dataset_digest == other.dataset_digest


def beats(candidate: Scores, champion: Scores, objective: ObjectiveConfig) -> bool:
    """Strictly better on the first objective (the rule select_best uses on the Pareto front)."""
    name = objective.names[0]
    return strictly_better(candidate.values[name], champion.values[name], objective.directions[0])
