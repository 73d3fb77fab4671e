"""The sweep loop: a worker leaves only when the study has its trials, retries of dead workers'
trials included."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from harness.study import loop
from harness.study.resume import open_study, retry_of
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


def test_a_live_trial_failed_by_a_peer_ends_its_run_failed_and_its_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer may fail a live trial as stale (its heartbeats were hidden by an outage the peer never
    saw). Its own worker then cannot tell Optuna the result: the run must not claim FINISHED, and
    the worker goes on with the retry instead of crashing."""
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    study = open_study(config)
    peer_failed: list[int] = []

    def fail_it_as_a_peer_would() -> None:
        if peer_failed:
            return
        (running,) = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        study._storage.set_trial_state_values(running._trial_id, state=TrialState.FAIL)
        with warnings.catch_warnings():  # experimental in name only
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.get_trials()[running.number])
        peer_failed.append(running.number)

    use_backend(monkeypatch, InstantBackend(on_train=fail_it_as_a_peer_would))
    result = loop.run_sweep(config)

    trials = result.study.get_trials()
    lost = trials[peer_failed[0]]
    assert lost.state == TrialState.FAIL
    client = MlflowClient(config.mlflow.tracking_uri)
    run = client.get_run(lost.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert "another worker" in run.data.tags["harness.error"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
