"""What a study says about itself: trial tables, best trial, plots on the parent run, progress."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness.config import ObjectiveConfig
from harness.lifecycle.confirmed import confirmed_best
from harness.metrics import parse
from harness.storage import repeat_of
from harness.tracking import Tracker

log = logging.getLogger(__name__)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Pure view of every trial: number, state, params, objective, MLflow run id."""
    return [
        {
            "number": t.number,
            "repeat_of": repeat_of(t),  # a confirmation run of that search trial's configuration
            "state": t.state.name,
            "params": dict(t.params),
            "objective": _objective(t),
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
            # held-out scorer -> [mean, ci_low, ci_high] of (trial - baseline) on the same prompts
            "vs_baseline": t.user_attrs.get("harness.vs_baseline", {}),
            "duration_s": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]


def _objective(trial: FrozenTrial) -> float | list[float] | None:
    if trial.state != TrialState.COMPLETE or trial.values is None:
        return None
    return trial.values[0] if len(trial.values) == 1 else list(trial.values)


def _flat_vs(row: dict[str, Any]) -> dict[str, float]:
    """The paired differences as columns named as their MLflow metrics are."""
    out = {}
    for name, values in row["vs_baseline"].items():
        out |= dict(zip(parse(name).interval_keys(), values, strict=True))
    return out


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The search trial of the configuration confirmation chose, else the best COMPLETE trial;
    None while there is none or the study is multi-objective."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete or len(study.directions) > 1:
        return None
    return confirmed_best(study) or study.best_trial


def _plots(study: optuna.Study) -> dict[str, Any]:
    from optuna import visualization as vis

    if len(study.directions) > 1:
        return {"plots/pareto_front.html": vis.plot_pareto_front(study)}
    figures: dict[str, Any] = {"plots/optimization_history.html": vis.plot_optimization_history(study)}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) >= 2:
        figures["plots/parallel_coordinate.html"] = vis.plot_parallel_coordinate(study)
        figures["plots/intermediate_values.html"] = vis.plot_intermediate_values(study)
        try:
            figures["plots/param_importances.html"] = vis.plot_param_importances(study)
        except (RuntimeError, ValueError) as exc:  # too few distinct values to rank importance
            log.info("param importances skipped: %s", exc)
    return figures


def summarise(study: optuna.Study, tracker: Tracker, parent_id: str, objective: ObjectiveConfig) -> None:
    """Best trial (or Pareto front), the table of all trials and study plots, on the parent run."""
    rows = trial_rows(study)
    if rows:
        flat = [
            {**{k: v for k, v in r.items() if k not in ("params", "vs_baseline")}, **r["params"], **_flat_vs(r)}
            for r in rows
        ]
        tracker.log_table(parent_id, flat, "trials.json")
    if objective.is_multi and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        front = [
            {
                "number": t.number,
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
                **dict(zip(objective.names, t.values, strict=True)),
                **t.params,
            }
            for t in study.best_trials
        ]
        tracker.log_table(parent_id, front, "pareto_front.json")
        tracker.set_tags(parent_id, {"pareto.trial_numbers": [r["number"] for r in front]})
    counts = {state.name.lower(): 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for row in rows:
        key = row["state"].lower()
        if key in counts:
            counts[key] += 1
    tracker.log_metrics(parent_id, {f"trials_{k}": float(v) for k, v in counts.items()})
    for name, figure in _plots(study).items() if rows else ():
        try:
            tracker.log_figure(parent_id, figure, name)
        except Exception as exc:  # a plot must never cost the study its summary
            log.warning("could not log %s: %s", name, exc)
    best = best_trial(study)
    if best is None:
        return
    tracker.log_metrics(parent_id, {f"best_{objective.names[0]}": float(best.value or 0.0)})
    tracker.set_tags(
        parent_id,
        {
            "best.trial_number": best.number,
            "best.run_id": best.user_attrs.get("mlflow_run_id", ""),
            "best.params": best.params,
        },
    )


def progress_callback(progress: Any, total: int | None, phase: str = "study") -> Any:
    """An Optuna callback that advances a rich progress bar by one per finished trial."""
    task = progress.add_task(phase, total=total)

    def advance(study: optuna.Study, trial: FrozenTrial) -> None:
        best = best_trial(study)
        text = f"{phase} (best {best.value:.4f})" if best is not None and best.value is not None else phase
        progress.update(task, advance=1, description=text)

    return advance
