"""One trial: sample params, train, score, and mirror the outcome onto its MLflow run."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.backends.protocol import Backend, TrainResult, TrialContext, TrialStopped
from harness.config import ObjectiveConfig, StudyConfig
from harness.lifecycle.weights import best_so_far, keep_weights
from harness.objective import objective_metrics, objective_value, vs_baseline_summary
from harness.search_space import suggest
from harness.storage import (
    ATTR_INTERRUPTED,
    ATTR_REPEAT,
    ATTR_REPEAT_OF,
    ATTR_RUN_ID,
    ATTR_VS_BASELINE,
    ATTR_WORKER,
    repeat_of,
)
from harness.study.checkpoints import ATTR_BEST_EPOCH, checkpoint_hook
from harness.study.coordination import study_lock
from harness.study.outcome import failure_attrs
from harness.study.sampling import SEED_KEY, seed_of
from harness.tracking import TAG_MODEL_DIR, TAG_REMOTE_MODEL, TAG_STATE, TAG_STUDY, TAG_TRIAL, MetricBuffer, Tracker

# Trial state -> MLflow run status: the run never claims more than the trial achieved.
RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


LOST_REASON = (
    "another worker failed this trial as stale while it still ran (its heartbeats could not be written,"
    " e.g. during a database outage); its result is not counted and its parameters run again"
)


class TrialLost(RuntimeError):
    """The trial finished here, but a peer had already failed it: Optuna cannot take its result."""


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


def model_tags(result: TrainResult) -> dict[str, str]:
    """Where the trained model lives, for registration: local weights or a remote model id."""
    tags = {}
    if result.model_dir is not None:
        tags[TAG_MODEL_DIR] = str(result.model_dir.resolve())
    if result.remote_model is not None:
        tags[TAG_REMOTE_MODEL] = result.remote_model
    return tags


def run_name(number: int, original: int | None, repeat: int) -> str:
    """``trial-7``, or for a confirmation trial ``trial-7 (repeat of 3, seed 2)``: the k-th further seed."""
    return f"trial-{number}" if original is None else f"trial-{number} (repeat of {original}, seed {repeat})"


def _spent(trial: optuna.Trial, key: str) -> float:
    others = trial.study.get_trials(deepcopy=False)
    return float(sum(t.user_attrs.get(key, 0.0) for t in others if t.number != trial.number))


def reporter(
    trial: optuna.Trial, objective: ObjectiveConfig, at_checkpoints: bool = False
) -> Callable[[float, int], None]:
    """Intermediate eval loss for the pruner, signed so that better always moves the study's way;
    nothing when the objective itself is measured ``at_checkpoints`` (harness.study.checkpoints)."""

    def report(value: float, step: int) -> None:
        if objective.is_multi or at_checkpoints:
            return  # Optuna's pruners are single-objective; the checkpoints report the objective
        trial.report(value if objective.direction == "minimize" else -value, step)
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
    evaluator: Any = None  # harness.evaluation.evaluator.Evaluator when evaluation is on
    # What scores checkpoints (harness.evaluation.checkpoint_scores) when the objective reads answers.
    checkpoint_scorer: Any = None
    started: int = 0  # trials this worker has started (a worker's --max-trials counts these)
    stopped_study: bool = False  # a trial's TrialStopped said no further trial may start
    current: int | None = None  # the number of the trial this worker runs (or ran last)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        self.started += 1
        self.current = trial.number
        seed = seed_of(trial, self.config.sampler)
        params = suggest(trial, self.config.search_space)
        original, repeat = repeat_of(trial), int(trial.user_attrs.get(ATTR_REPEAT, 0))
        tags = {**self.run_tags, TAG_STUDY: self.config.study_name, TAG_TRIAL: str(trial.number)}
        if original is not None:  # a confirmation trial: tagged so, so that its configuration is found
            tags |= {ATTR_REPEAT_OF: str(original), ATTR_REPEAT: str(repeat)}
        if seed is not None:  # what its parameters were drawn with, to reproduce them
            trial.set_user_attr(SEED_KEY, seed)
            tags[SEED_KEY] = str(seed)
        trial.set_user_attr(ATTR_WORKER, f"{socket.gethostname()}:{os.getpid()}")  # for people; heartbeats decide
        self.tracker.reopen(self.parent_run_id)  # a worker that finished earlier may have ended it
        run_id = self.tracker.child_run(self.parent_run_id, run_name(trial.number, original, repeat), tags)
        buffer = MetricBuffer(self.tracker, run_id)
        ctx = TrialContext(
            number=trial.number,
            log_metrics=buffer.add,
            # A repeat is evidence about a configuration already chosen: never pruned, and its
            # losses do not move the pruner's medians either.
            report=reporter(trial, self.config.objective, self.config.evaluation.during_training.enabled)
            if original is None
            else lambda value, step: None,
            set_attr=trial.set_user_attr,
            attrs=trial.user_attrs,
            progress=self.progress,
            log_text=lambda text, artifact_file: self.tracker.log_text(run_id, text, artifact_file),
            set_tags=lambda tags: self.tracker.set_tags(run_id, dict(tags)),
            spent=lambda key: _spent(trial, key),
            exclusive=lambda name: study_lock(self.config.storage, f"{self.config.study_name}:{name}"),
            run_id=run_id,
            checkpoint=checkpoint_hook(trial, self.config, self.checkpoint_scorer, buffer, prunable=original is None),
            repeat=repeat,
        )
        try:
            trial.set_user_attr(ATTR_RUN_ID, run_id)
            self.tracker.log_params(run_id, params.as_flat_dict())
            result = self.backend.train(params, ctx)
            try:
                self.tracker.log_params(run_id, result.params)
                if "best_epoch" in result.params:  # epochs is an upper bound: the epoch the trial kept
                    trial.set_user_attr(ATTR_BEST_EPOCH, result.params["best_epoch"])
                self.tracker.set_tags(run_id, model_tags(result))
                metrics = {**result.metrics, **self.evaluate(result, run_id)}
            finally:
                result.release()
            value = objective_value(self.config.objective, metrics)
            if summary := vs_baseline_summary(metrics):
                trial.set_user_attr(ATTR_VS_BASELINE, summary)
            buffer.add({**metrics, **objective_metrics(self.config.objective, value)})
            self._keep_weights(trial, run_id, result, value)
        except optuna.TrialPruned as pruned:
            self._finish(run_id, buffer, TrialState.PRUNED, pruned)
            raise
        except TrialStopped as stopped:
            if stopped.stop_study:
                self.stopped_study = True
                trial.study.stop()
            if stopped.resumable:
                trial.set_user_attr(ATTR_INTERRUPTED, True)
            self._failed(trial, run_id, buffer, stopped, stopped.stop_study, stopped.run_status)
            raise
        except KeyboardInterrupt as stop:
            trial.set_user_attr(ATTR_INTERRUPTED, True)
            self._finish(run_id, buffer, TrialState.FAIL, stop, status="KILLED")
            raise
        except BaseException as error:
            self._failed(trial, run_id, buffer, error, stops_study=False)
            raise
        if self.lost_to_peer(trial.study):
            lost = TrialLost(LOST_REASON)
            self._finish(run_id, buffer, TrialState.FAIL, lost)
            raise lost
        self._finish(run_id, buffer, TrialState.COMPLETE)
        return value

    def lost_to_peer(self, study: optuna.Study) -> bool:
        """Whether another worker failed this worker's current trial as stale while it still ran."""
        if self.current is None:
            return False
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        return any(t.number == self.current for t in failed)

    def _keep_weights(self, trial: optuna.Trial, run_id: str, result: TrainResult, value: float | list[float]) -> None:
        """The trial's weights onto its run (harness.lifecycle.weights), so that registration and
        eval work from any machine; before the trial counts as COMPLETE, so every complete trial has them."""
        training = getattr(self.config, "training", None)  # local studies only
        if result.model_dir is None or training is None:
            return
        completed = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = best_so_far(completed, trial.number, value, self.config.objective)
        keep_weights(self.tracker, run_id, result.model_dir, training.log_full_weights, best)

    def evaluate(self, result: TrainResult, run_id: str) -> dict[str, float]:
        """Consistency scores for a trained model; empty when evaluation is off or impossible."""
        if self.evaluator is None or result.answer is None:
            return {}
        return self.evaluator.evaluate(result.answer, run_id)

    def _failed(
        self,
        trial: optuna.Trial,
        run_id: str,
        buffer: MetricBuffer,
        error: BaseException,
        stops_study: bool,
        status: str | None = None,
    ) -> None:
        """Why the trial failed, kept on it (harness.study.outcome reads it); then its run ends."""
        try:
            for key, value in failure_attrs(error, stops_study).items():
                trial.set_user_attr(key, value)
        finally:
            self._finish(run_id, buffer, TrialState.FAIL, error, status)

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
            if isinstance(error, KeyboardInterrupt) or getattr(error, "resumable", False):
                tags["harness.interrupted"] = "true"
            self.tracker.set_tags(run_id, tags)
        finally:
            self.tracker.end(run_id, status or RUN_STATUS[state])
