"""How a sweep of several workers ends: one verdict from the whole sweep's trials, whichever worker
reports it, and no worker that ran nothing overwrites it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from harness.cli import app
from harness.study import loop, workers
from tests.study.sweeps import InstantBackend, sweep_config, sweep_settings, use_backend

runner = CliRunner()
WAIT_S = 120  # a generous bound on a step that takes well under a second: a hang fails the test


def boom() -> None:
    raise ValueError("no_such_schedule is not a valid SchedulerType")


def one_after_another(
    argv: Sequence[str], envs: Sequence[Any], watch: Callable[[], None] | None = None, **_: Any
) -> list[int]:
    """``run_workers`` in this process (so the instant backend is theirs too), each worker starting
    once the one before has left: the second finds every trial failed and runs none."""
    assert list(argv[:4]) == [sys.executable, "-m", "harness.cli", "worker"]
    return [app(list(argv[3:]), standalone_mode=False) or 0 for _ in envs]


def parent_run(tracking_uri: str) -> Any:
    client = MlflowClient(tracking_uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "s"]
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`harness.role` = 'parent'")
    return parent


def test_a_worker_that_ran_nothing_leaves_the_failed_verdict_of_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sweep_settings(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(settings))
    use_backend(monkeypatch, InstantBackend(on_train=boom))
    monkeypatch.setattr(workers, "run_workers", one_after_another)
    result = runner.invoke(app, ["sweep", str(path), "--workers", "2"])

    assert result.exit_code == 1, result.output
    assert "every trial failed (2)" in result.output and "no_such_schedule" in result.output
    study = optuna.load_study(study_name="s", storage=settings["storage"])
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
    parent = parent_run(settings["mlflow"]["tracking_uri"])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["harness.outcome"] == "failed"
    assert "no_such_schedule" in parent.data.tags["harness.outcome_reason"]


def test_the_last_worker_out_reports_the_whole_sweep_not_its_own_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A's trial completes; worker B joins while it runs, and B's trial fails after A has
    left. The sweep completed a trial, so it is done, though B (the last out) ran only a failure."""
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    b_training, a_left = threading.Event(), threading.Event()
    late: list[loop.SweepResult] = []
    worker_b = threading.Thread(target=lambda: late.append(loop.run_sweep(config)))

    def train() -> None:
        if threading.current_thread() is worker_b:
            b_training.set()
            assert a_left.wait(WAIT_S)
            boom()
        worker_b.start()
        assert b_training.wait(WAIT_S)  # B is mid-trial while A's trial completes and A leaves

    use_backend(monkeypatch, InstantBackend(on_train=train))
    early = loop.run_sweep(config, max_trials=1)
    a_left.set()
    worker_b.join(WAIT_S)

    study = optuna.load_study(study_name="s", storage=config.storage)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.FAIL]
    assert (early.outcome.exit_code, late[0].outcome.exit_code) == (0, 0)
    parent = parent_run(config.mlflow.tracking_uri)
    assert (parent.info.status, parent.data.tags["harness.outcome"]) == ("FINISHED", "done")
