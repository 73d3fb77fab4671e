"""Pure: a study's objective value from a run's metrics, and how it is logged."""

from __future__ import annotations

from collections.abc import Mapping

from harness.config import ObjectiveConfig
from harness.metrics import HELDOUT, VS_BASELINE, objective_key, try_parse


class ObjectiveMetricMissing(RuntimeError):
    """The configured objective metric was not produced by the trial."""


def _metric(metrics: Mapping[str, float], name: str) -> float:
    if name not in metrics:
        raise ObjectiveMetricMissing(f"objective metric {name!r} not among the trial's metrics {sorted(metrics)}")
    return float(metrics[name])


def objective_value(objective: ObjectiveConfig, metrics: Mapping[str, float]) -> float | list[float]:
    """Pure: the study's objective from a trial's final metrics (a list when multi-objective)."""
    if objective.metrics:
        return [_metric(metrics, term.metric) for term in objective.metrics]
    if objective.weights:
        return sum(weight * _metric(metrics, name) for name, weight in objective.weights.items())
    return _metric(metrics, objective.metric)


def objective_metrics(objective: ObjectiveConfig, value: float | list[float]) -> dict[str, float]:
    """Pure: how the objective is logged on the trial's run."""
    if isinstance(value, list):
        return {objective_key(name): v for name, v in zip(objective.names, value, strict=True)}
    return {objective_key(): value}


def vs_baseline_summary(metrics: Mapping[str, float]) -> dict[str, list[float]]:
    """Pure: held-out paired differences to the baseline as {scorer metric: [mean, low, high]}."""
    summary = {}
    for key in metrics:
        name = try_parse(key)
        if name is not None and name.split == HELDOUT and name.suffix == VS_BASELINE:
            low, high = (metrics.get(k) for k in name.interval_keys()[1:])
            if low is not None and high is not None:
                summary[name.base.key] = [float(metrics[key]), float(low), float(high)]
    return summary
