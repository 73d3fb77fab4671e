"""Optuna's journal file storage keeps no heartbeats: one worker at a time on a journal study;
the next worker runs a killed worker's trial again instead of waiting for it for ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from harness.cli import app
from harness.study import loop
from harness.study.journal import SecondWorkerError
from harness.study.resume import open_study, retry_of
from harness.tracking import Tracker
from tests.study.sweeps import InstantBackend, start_foreign_worker, sweep_config, use_backend


def test_a_killed_workers_trial_runs_again_instead_of_being_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # timeout_minutes only bounds the test if the worker waits for the dead trial; it must not come to that.
    config = sweep_config(tmp_path, str(tmp_path / "journal.log"), timeout_minutes=0.5)
    open_study(config)
    tracker = Tracker(config.mlflow.tracking_uri, "s")
    run_id = tracker.child_run(tracker.parent_run("s", {}), "trial-0", {})
    start_foreign_worker(config.storage, run_id, heartbeat=False).kill()  # dies mid-trial, trial 0 RUNNING
    use_backend(monkeypatch, InstantBackend())
    result = loop.run_sweep(config)

    trials = result.study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert [t.state for t in trials if retry_of(t) == 0] == [TrialState.COMPLETE]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert result.reconciled == [0]
    dead_run = MlflowClient(config.mlflow.tracking_uri).get_run(run_id)
    assert dead_run.info.status == "FAILED" and "died" in dead_run.data.tags["harness.error"]


HOLD_THE_STUDY = """
import sys, time
from harness.config import parse_study
from harness.study.journal import sole_worker
config = parse_study({"study_name": "s", "data": {"train_file": "x.jsonl"}, "storage": sys.argv[1]})
with sole_worker(config):
    print("working", flush=True)
    time.sleep(600)
"""


def test_a_second_worker_is_refused_while_the_first_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep_config(tmp_path, str(tmp_path / "journal.log"))
    first = subprocess.Popen([sys.executable, "-c", HOLD_THE_STUDY, config.storage], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None and first.stdout.readline().strip() == "working"
    use_backend(monkeypatch, InstantBackend())
    with pytest.raises(SecondWorkerError, match="journal"):
        loop.run_sweep(config)
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "journal.log").exists()  # nothing recorded

    first.kill()  # the lock dies with its holder: the next worker goes ahead
    first.wait()
    assert sum(t.state == TrialState.COMPLETE for t in loop.run_sweep(config).study.get_trials()) == 2


def test_sweep_with_several_workers_on_a_journal_file_is_refused(study_yaml: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.log"
    args = ["sweep", str(study_yaml), f"storage={journal}", "--workers", "2"]
    result = CliRunner().invoke(app, args, env={**os.environ, "COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "journal" in result.output and "one worker at a time" in result.output
    assert not journal.exists() and not (tmp_path / "mlruns").exists()
    assert yaml.safe_load(study_yaml.read_text())["storage"] != str(journal)
