"""One trial: sample params, train, score, and mirror the outcome onto its MLflow run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.backends.base import Backend, TrialContext, TrialStopped
from harness.config import ObjectiveConfig, StudyConfig
from harness.search_space import suggest
from harness.tracking import TAG_STATE, TAG_STUDY, TAG_TRIAL, MetricBuffer, Tracker

# Trial state -> MLflow run status: the run never claims more than the trial achieved.
RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
ATTR_RUN_ID = "mlflow_run_id"
ATTR_HOST = "harness.host"
ATTR_PID = "harness.pid"
ATTR_INTERRUPTED = "harness.interrupted"


class ObjectiveMetricMissing(RuntimeError):
    """The configured objective metric was not produced by the trial."""


def objective_value(objective: ObjectiveConfig, metrics: Mapping[str, float]) -> float:
    """Pure: pick the study's objective out of a trial's final metrics."""
    if objective.metric not in metrics:
        raise ObjectiveMetricMissing(
            f"objective.metric {objective.metric!r} not among the trial's metrics {sorted(metrics)}"
        )
    return float(metrics[objective.metric])


def outcome_tags(state: TrialState, error: BaseException | None = None) -> dict[str, str]:
    """Pure: the tags that explain a trial's end on its run."""
    tags = {TAG_STATE: state.name}
    if state == TrialState.PRUNED:
        tags["pruned"] = "true"
        if error is not None and str(error):
            tags["harness.pruned_reason"] = str(error)[:500]
    elif state == TrialState.FAIL and error is not None:
        tags["harness.error_class"] = type(error).__name__
        tags["harness.error"] = (str(error) or type(error).__name__)[:5000]
        if getattr(error, "code", ""):
            tags["harness.error_code"] = str(error.code)
    return tags


def _spent(trial: optuna.Trial, key: str) -> float:
    others = trial.study.get_trials(deepcopy=False)
    return float(sum(t.user_attrs.get(key, 0.0) for t in others if t.number != trial.number))


def reporter(trial: optuna.Trial) -> Callable[[float, int], None]:
    def report(value: float, step: int) -> None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"eval_loss {value:.4f} at step {step}")

    return report


@dataclass
class TrialRunner:
    """The Optuna objective: everything a trial needs, bound once per study."""

    config: StudyConfig
    backend: Backend
    tracker: Tracker
    parent_run_id: str
    run_tags: Mapping[str, str]
    progress: Any = None

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.config.search_space)
        tags = {**self.run_tags, TAG_STUDY: self.config.study_name, TAG_TRIAL: str(trial.number)}
        run_id = self.tracker.child_run(self.parent_run_id, f"trial-{trial.number}", tags)
        for key, value in {ATTR_RUN_ID: run_id, ATTR_HOST: socket.gethostname(), ATTR_PID: os.getpid()}.items():
            trial.set_user_attr(key, value)
        buffer = MetricBuffer(self.tracker, run_id)
        ctx = TrialContext(
            number=trial.number,
            log_metrics=buffer.add,
            report=reporter(trial),
            set_attr=trial.set_user_attr,
            attrs=trial.user_attrs,
            progress=self.progress,
            log_text=lambda text, artifact_file: self.tracker.log_text(run_id, text, artifact_file),
            spent=lambda key: _spent(trial, key),
        )
        try:
            self.tracker.log_params(run_id, params.as_flat_dict())
            result = self.backend.train(params, ctx)
            self.tracker.log_params(run_id, result.params)
            value = objective_value(self.config.objective, result.metrics)
            buffer.add({**result.metrics, "objective": value}, step=0)
        except optuna.TrialPruned as pruned:
            self._finish(run_id, buffer, TrialState.PRUNED, pruned)
            raise
        except TrialStopped as stopped:
            if stopped.stop_study:
                trial.study.stop()
            self._finish(run_id, buffer, TrialState.FAIL, stopped, status=stopped.run_status)
            raise
        except KeyboardInterrupt as stop:
            trial.set_user_attr(ATTR_INTERRUPTED, True)
            self._finish(run_id, buffer, TrialState.FAIL, stop, status="KILLED")
            raise
        except BaseException as error:
            self._finish(run_id, buffer, TrialState.FAIL, error)
            raise
        self._finish(run_id, buffer, TrialState.COMPLETE)
        return value

    def _finish(
        self,
        run_id: str,
        buffer: MetricBuffer,
        state: TrialState,
        error: BaseException | None = None,
        status: str | None = None,
    ) -> None:
        try:
            buffer.flush()
            tags = outcome_tags(state, error)
            if isinstance(error, KeyboardInterrupt):
                tags["harness.interrupted"] = "true"
            self.tracker.set_tags(run_id, tags)
        finally:
            self.tracker.end(run_id, status or RUN_STATUS[state])
