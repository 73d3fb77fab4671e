"""Trial outcomes mirrored onto MLflow runs, resume and reconciliation, on real stores."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.backends.protocol import TrainResult, TrialContext
from harness.config import StudyConfig, parse_study
from harness.search_space import TrialParams, suggest
from harness.storage import ATTR_RUN_ID
from harness.study.resume import open_study, recover, trials_done
from harness.study.sampling import SEED_KEY, make_sampler
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


def test_a_trial_records_the_seed_its_parameters_were_drawn_with(tmp_path: Path) -> None:
    cfg = parse_study(
        {
            "study_name": "s",
            "data": {"train_file": "x.jsonl"},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"},
            "sampler": {"type": "tpe", "seed": 7, "n_startup_trials": 5},
            "search_space": {"lr_multiplier": {"low": 0.5, "high": 4.0}, "dropout": {"low": 0.0, "high": 0.2}},
        }
    )
    tracker = Tracker(cfg.mlflow.tracking_uri, "s")
    study = optuna.create_study(sampler=make_sampler(cfg.sampler))
    study.optimize(TrialRunner(cfg, ScriptedBackend("ok"), tracker, tracker.parent_run("s", {}), {}), n_trials=2)
    client = MlflowClient(cfg.mlflow.tracking_uri)
    for trial in study.trials:
        seed = trial.user_attrs[SEED_KEY]
        assert client.get_run(trial.user_attrs[ATTR_RUN_ID]).data.tags[SEED_KEY] == str(seed)
        # TPE's startup trials draw as a random sampler does: the recorded seed gives the same parameters.
        again = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        again.optimize(lambda t: suggest(t, cfg.search_space).dropout, n_trials=1)
        assert again.trials[0].params == trial.params
    assert study.trials[0].user_attrs[SEED_KEY] != study.trials[1].user_attrs[SEED_KEY]


DEAD_WORKER = """
import os, sys
import optuna
import pytest
storage = optuna.storages.RDBStorage(sys.argv[1], heartbeat_interval=1, grace_period=2)
study = optuna.load_study(study_name="s", storage=storage)

def objective(trial):
    trial.suggest_int("epochs", 1, 3)
    trial.set_user_attr("mlflow_run_id", sys.argv[2])
    trial.set_user_attr("resume.job", "ftjob-1")
    os._exit(0)  # dies mid-trial: no state written, heartbeats stop

study.optimize(objective, n_trials=1)
"""


def test_a_dead_workers_trial_is_failed_closed_and_retried_once(tmp_path: Path) -> None:
    cfg = parse_study(
        {
            "study_name": "s",
            "data": {"train_file": "x.jsonl"},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"},
            "storage": f"sqlite:///{tmp_path}/o.db",
            "workers": {"heartbeat_interval_s": 1, "grace_period_s": 2},
        }
    )
    tracker = Tracker(cfg.mlflow.tracking_uri, "s")
    run_id = tracker.child_run(tracker.parent_run("s", {}), "trial-0", {})
    study = open_study(cfg, tracker)
    subprocess.run([sys.executable, "-c", DEAD_WORKER, cfg.storage, run_id], check=True, timeout=120)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]
    assert recover(study) == []  # within the grace period the worker may still be alive
    time.sleep(3)
    assert recover(study) == [0]
    dead, retry = study.get_trials()
    assert (dead.state, retry.state) == (TrialState.FAIL, TrialState.WAITING)
    assert retry.params == dead.params
    assert retry.user_attrs["resume.job"] == "ftjob-1"  # a remote job is reattached, not paid twice
    run = MlflowClient(cfg.mlflow.tracking_uri).get_run(run_id)
    assert run.info.status == "FAILED" and "heartbeats" in run.data.tags["harness.error"]
    assert recover(study) == []  # retried once, not on every start
    assert trials_done(study) == 0  # the retry will count, the dead trial does not


class StubEvaluator:
    def __init__(self) -> None:
        self.digest = "d1"
        self.splits: dict[str, list[Any]] = {"heldout": []}
        self.last_rows: dict[str, Any] = {}

    def evaluate(self, answerer: Any, run_id: str) -> dict[str, float]:
        return {"consistency/heldout/consistency": 0.5}


class StubBackend:
    def base_answerer(self) -> Any:
        return lambda prompts, max_new_tokens=None: []

    def baseline_metrics(self) -> dict[str, float]:
        return {}


def test_a_baseline_left_running_by_a_dead_worker_is_closed_and_done_again(tmp_path: Path) -> None:
    from harness.study.loop import ensure_baseline

    tracker = Tracker(f"sqlite:///{tmp_path}/m.db", "s")
    parent = tracker.parent_run("s", {})
    dead = tracker.child_run(parent, "baseline", {"harness.role": "baseline", "harness.eval_digest": "d1"})
    ensure_baseline(StubBackend(), StubEvaluator(), tracker, parent, {})
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    assert client.get_run(dead).info.status == "FAILED"
    assert "died" in client.get_run(dead).data.tags["harness.error"]
    baselines = tracker.find_runs("tags.`harness.role` = 'baseline' and attributes.status = 'FINISHED'")
    assert len(baselines) == 1 and baselines[0].data.metrics["consistency/heldout/consistency"] == 0.5


def test_a_failure_while_describing_the_parent_run_leaves_it_failed(
    study_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.config import load_config
    from harness.study import loop

    def broken(*args: Any) -> None:
        raise RuntimeError("tracking store went away")

    monkeypatch.setattr(loop, "_describe_parent", broken)
    config = load_config(study_yaml, ["evaluation.enabled=false"])
    with pytest.raises(RuntimeError):
        loop.run_sweep(config)
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name)
    parents = tracker.find_runs("tags.`harness.role` = 'parent'")
    assert [p.info.status for p in parents] == ["FAILED"]
