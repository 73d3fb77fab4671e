"""The objective measured during training on the tiny model: its curve on the run, the best
checkpoint kept, and a pruned trial KILLED with its reason and its curve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.study import resume, run_sweep
from harness.study.checkpoints import ATTR_BEST_EPOCH, ATTR_TRAINED_EPOCHS
from harness.study.resume import retry_of

pytestmark = pytest.mark.slow
METRIC = "consistency/heldout/consistency"
DURING = [
    "evaluation.scorers=[rouge_l,structure,detail]",
    "evaluation.max_new_tokens=12",
    "evaluation.train_sample_size=0",
    "evaluation.baseline=false",
    "evaluation.during_training=true",
    f"objective.metric={METRIC}",
    "objective.direction=maximize",
    "search_space.method=lora",
    "search_space.batch_size=4",  # 12 training examples: 3 steps an epoch
    "search_space.epochs=3",
    "search_space.lr_multiplier=20",
    "n_trials=1",
    "mlflow.register_best=false",
]


def trial_run(client: MlflowClient, number: int = 0) -> object:
    experiment = client.get_experiment_by_name("tiny")
    return next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == f"trial-{number}")


def curve(client: MlflowClient, run_id: str, metric: str) -> list[tuple[int, float]]:
    history = sorted(client.get_metric_history(run_id, metric), key=lambda m: (m.step, m.timestamp))
    return [(m.step, m.value) for m in history]


def test_the_objective_curve_and_the_best_checkpoint(study_yaml: Path) -> None:
    config = load_config(study_yaml, DURING)
    run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    run = trial_run(client)
    points = curve(client, run.info.run_id, METRIC)
    # One point per epoch's end at its training step, then the trial's result at the last step.
    assert [step for step, _ in points] == [3, 6, 9, 9]
    checkpoints = points[:3]
    best_step, best_value = max(checkpoints, key=lambda p: (p[1], -p[0]))  # ties: the earlier
    params = run.data.params
    assert params["keep"] == "best" and int(params["best_step"]) == best_step
    assert float(params["best_epoch"]) == best_step / 3 and params["checkpoints"] == "3"
    # The trial's result is its best checkpoint's: the final evaluation answers as that checkpoint did.
    assert run.data.metrics[METRIC] == pytest.approx(best_value)
    losses = dict(curve(client, run.info.run_id, "eval_loss"))
    assert run.data.metrics["eval_loss"] == pytest.approx(losses[best_step], rel=1e-5)  # its weights, restored
    assert run.data.metrics["checkpoint_eval_seconds_mean"] > 0 and run.data.metrics["epoch_train_seconds_mean"] > 0
    trial = optuna.load_study(study_name="tiny", storage=config.storage).trials[0]
    assert trial.intermediate_values == {n: v for n, (_, v) in enumerate(checkpoints, start=1)}
    assert trial.value == pytest.approx(best_value)
    assert trial.user_attrs[ATTR_BEST_EPOCH] == float(params["best_epoch"])


class PruneAtCheckpoint(optuna.pruners.BasePruner):
    """A scripted pruner: this trial is bad at checkpoint ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step == self.at


def test_a_pruned_trial_is_killed_with_its_reason_and_keeps_its_curve(
    study_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resume, "make_pruner", lambda config: PruneAtCheckpoint(2))
    config = load_config(study_yaml, DURING)
    run_sweep(config)
    trial = optuna.load_study(study_name="tiny", storage=config.storage).trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [1, 2] and trial.user_attrs[ATTR_TRAINED_EPOCHS] == 2.0
    client = MlflowClient(config.mlflow.tracking_uri)
    run = trial_run(client)
    assert run.info.status == "KILLED" and run.data.tags["pruned"] == "true"
    assert run.data.tags["harness.pruned_reason"].startswith(f"{METRIC} ")
    assert "at checkpoint 2 (epoch 2.00, step 6)" in run.data.tags["harness.pruned_reason"]
    assert [step for step, _ in curve(client, run.info.run_id, METRIC)] == [3, 6]  # the curve, kept
    assert [v for _, v in curve(client, run.info.run_id, METRIC)] == list(trial.intermediate_values.values())


def test_a_trial_is_never_pruned_at_its_last_checkpoint(study_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training is over there: the checkpoint is reported (later trials meet it) and the trial completes."""
    monkeypatch.setattr(resume, "make_pruner", lambda config: PruneAtCheckpoint(3))
    config = load_config(study_yaml, DURING)
    run_sweep(config)
    trial = optuna.load_study(study_name="tiny", storage=config.storage).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and sorted(trial.intermediate_values) == [1, 2, 3]
    assert trial_run(MlflowClient(config.mlflow.tracking_uri)).info.status == "FINISHED"


# A worker that stops dead in its first trial's second checkpoint evaluation (after scoring started).
HANG_IN_CHECKPOINT = """
import sys, time
from pathlib import Path
from harness.config import load_config
from harness.evaluation.checkpoint_scores import CheckpointScorer
from harness.study import run_sweep

score, calls = CheckpointScorer.score, []

def hanging(self, answer):
    calls.append(1)
    if len(calls) == 2:
        Path(sys.argv[2]).write_text("in checkpoint 2")
        time.sleep(600)  # killed here
    return score(self, answer)

CheckpointScorer.score = hanging
run_sweep(load_config(Path(sys.argv[1]), sys.argv[3:]))
"""


def test_resume_after_a_kill_in_a_checkpoint_evaluation(study_yaml: Path, tmp_path: Path) -> None:
    overrides = [*DURING, "workers.heartbeat_interval_s=1", "workers.grace_period_s=4"]
    marker = tmp_path / "in-checkpoint"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-c", HANG_IN_CHECKPOINT, str(study_yaml), str(marker), *overrides]
    worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marker.exists(), "the worker never reached its second checkpoint"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    config = load_config(study_yaml, overrides)
    run_sweep(config)  # the same command again: the dead trial fails as stale and runs again
    study = optuna.load_study(study_name="tiny", storage=config.storage)
    killed, retry = study.trials
    assert killed.state == optuna.trial.TrialState.FAIL and sorted(killed.intermediate_values) == [1]
    assert retry_of(retry) == killed.number and retry.params == killed.params
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert sorted(retry.intermediate_values) == [1, 2, 3]  # measured afresh, nothing taken from the dead run
    client = MlflowClient(config.mlflow.tracking_uri)
    assert client.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "FAILED"
    dead_curve = curve(client, killed.user_attrs["mlflow_run_id"], METRIC)
    assert [step for step, _ in dead_curve] == [3]  # its curve up to the kill, kept
    assert [step for step, _ in curve(client, retry.user_attrs["mlflow_run_id"], METRIC)] == [3, 6, 9, 9]
    assert dead_curve[0][1] == retry.intermediate_values[1]  # deterministic training: the same first epoch
