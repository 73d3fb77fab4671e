"""Trial outcomes mirrored onto MLflow runs, resume and reconciliation, on real stores."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.backends.base import TrainResult, TrialContext
from harness.config import StudyConfig, parse_study
from harness.search_space import TrialParams
from harness.storage import ATTR_HOST, ATTR_PID, ATTR_RUN_ID
from harness.study.storage import reconcile
from harness.study.trial import TrialRunner
from harness.tracking import Tracker


class ScriptedBackend:
    """Stands in for training so each outcome path can be forced; the stores stay real."""

    def __init__(self, outcome: str):
        self.outcome = outcome

    def prepare(self) -> dict[str, Any]:
        return {}

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        for step in (1, 2, 3):
            ctx.log_metrics({"train_loss": 2.0 / step}, step)
            ctx.report(1.0 / step, step)
        if self.outcome == "fail":
            raise RuntimeError("out of memory")
        if self.outcome == "interrupt":
            raise KeyboardInterrupt
        return TrainResult(metrics={"eval_loss": 0.5}, params={})


def config(tmp_path: Path) -> StudyConfig:
    return parse_study(
        {"study_name": "s", "data": {"train_file": "x.jsonl"}, "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"}}
    )


def run_one(tmp_path: Path, outcome: str, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, Any]:
    cfg = config(tmp_path)
    tracker = Tracker(cfg.mlflow.tracking_uri, "s")
    parent = tracker.parent_run("s", {})
    study = optuna.create_study(pruner=pruner)
    runner = TrialRunner(cfg, ScriptedBackend(outcome), tracker, parent, {})
    with contextlib.suppress(KeyboardInterrupt):
        study.optimize(runner, n_trials=1, catch=(Exception,))
    trial = study.trials[0]
    return study, MlflowClient(cfg.mlflow.tracking_uri).get_run(trial.user_attrs[ATTR_RUN_ID])


def test_complete_trial_finishes_its_run(tmp_path: Path) -> None:
    study, run = run_one(tmp_path, "ok", optuna.pruners.NopPruner())
    assert study.trials[0].state == TrialState.COMPLETE
    assert run.info.status == "FINISHED"
    assert run.data.metrics["objective"] == 0.5
    assert {"epochs", "batch_size", "lr_multiplier", "dropout", "method"} <= set(run.data.params)


def test_pruned_trial_is_killed_with_a_tag(tmp_path: Path) -> None:
    study, run = run_one(tmp_path, "ok", optuna.pruners.ThresholdPruner(upper=0.1))
    assert study.trials[0].state == TrialState.PRUNED
    assert run.info.status == "KILLED"
    assert run.data.tags["pruned"] == "true"
    assert run.data.metrics["train_loss"] == 2.0  # what was logged before pruning is kept


def test_failed_trial_records_the_error(tmp_path: Path) -> None:
    study, run = run_one(tmp_path, "fail", optuna.pruners.NopPruner())
    assert study.trials[0].state == TrialState.FAIL
    assert run.info.status == "FAILED"
    assert run.data.tags["harness.error"] == "out of memory"


def test_ctrl_c_leaves_no_run_running(tmp_path: Path) -> None:
    study, run = run_one(tmp_path, "interrupt", optuna.pruners.NopPruner())
    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[0].user_attrs["harness.interrupted"] is True
    assert run.info.status == "KILLED"


def test_reconcile_fails_a_dead_process_trial_and_requeues_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    tracker = Tracker(cfg.mlflow.tracking_uri, "s")
    run_id = tracker.child_run(tracker.parent_run("s", {}), "trial-0", {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask({"epochs": optuna.distributions.IntDistribution(1, 3)})
    import socket

    for key, value in {ATTR_RUN_ID: run_id, ATTR_HOST: socket.gethostname(), ATTR_PID: dead.pid, "resume.job": "ftjob-1"}.items():
        trial.set_user_attr(key, value)
    assert reconcile(study, tracker) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    retry = study.get_trials()[1]
    assert retry.system_attrs["fixed_params"] == trial.params
    assert retry.user_attrs["resume.job"] == "ftjob-1"
    assert MlflowClient(cfg.mlflow.tracking_uri).get_run(run_id).info.status == "FAILED"
    assert reconcile(study, tracker) == []  # requeued once, not on every start


def test_live_trials_are_left_alone(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    import os
    import socket

    trial.set_user_attr(ATTR_HOST, socket.gethostname())
    trial.set_user_attr(ATTR_PID, os.getppid())
    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", "s")
    assert reconcile(study, tracker) == []
    assert study.get_trials()[0].state == TrialState.RUNNING
