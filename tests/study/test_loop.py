"""The sweep loop: a worker leaves only when the study has its trials, retries of dead workers'
trials included."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study import loop
from harness.study.storage import open_study, retry_of
from harness.tracking import Tracker
from tests.study.sweeps import InstantBackend, start_foreign_worker, sweep_config, use_backend


def test_a_worker_runs_the_retry_of_a_dead_workers_trial_before_it_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    open_study(config)  # a first worker created the study
    tracker = Tracker(config.mlflow.tracking_uri, "s")
    run_id = tracker.child_run(tracker.parent_run("s", {}), "trial-0", {})
    other = start_foreign_worker(config.storage, run_id, heartbeat=True)
    use_backend(monkeypatch, InstantBackend(on_train=other.kill))  # the other worker dies meanwhile
    result = loop.run_sweep(config)
    other.wait()

    trials = result.study.get_trials()
    assert trials[0].state == TrialState.FAIL  # failed once its heartbeats went stale...
    retries = [t for t in trials if retry_of(t) == 0]
    assert [t.state for t in retries] == [TrialState.COMPLETE]  # ...and run again here, not left WAITING
    assert retries[0].params == trials[0].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    client = MlflowClient(config.mlflow.tracking_uri)
    assert client.get_run(run_id).info.status == "FAILED"
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"


def test_a_retry_queued_after_the_study_reached_its_trials_is_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers that asked at the same instant overshoot n_trials by one; when that extra
    trial's worker dies, its retry is run all the same, not left WAITING for ever."""
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    study = open_study(config)
    for value in (0.4, 0.6):
        study.add_trial(optuna.trial.create_trial(value=value))
    tracker = Tracker(config.mlflow.tracking_uri, "s")
    run_id = tracker.child_run(tracker.parent_run("s", {}), "trial-2", {})
    start_foreign_worker(config.storage, run_id, heartbeat=True).kill()
    use_backend(monkeypatch, InstantBackend())
    trials = loop.run_sweep(config).study.get_trials()

    assert [t.state for t in trials if retry_of(t) == 2] == [TrialState.COMPLETE]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
