"""Services going away under running workers: the study database stopped and started again, the
tracking server stopped for 20 s. Real processes, real PostgreSQL, a real mlflow server; nothing
recorded is lost and no live trial is failed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import MlflowServer
from tests.private_postgres import PASSWORD, PrivatePostgres, running_private_postgres
from tests.study.test_workers_e2e import wait_for_a_running_trial

pytestmark = pytest.mark.slow


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A server of the test's own: stopping the shared one would break every other test using it."""
    with running_private_postgres() as server:
        yield server


def _workers(
    study_yaml: Path, overrides: list[str], count: int, env: Mapping[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-m", "harness.cli", "worker", str(study_yaml), *overrides, "--quiet"]
    return [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(count)]


def _finish(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]


def _trial_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if "harness.trial_number" in r.data.tags]


def _assert_every_report_logged(study: optuna.Study, client: MlflowClient) -> None:
    """Each trial's eval losses are in Optuna and in MLflow, step for step: none lost in either."""
    for trial in study.trials:
        history = client.get_metric_history(trial.user_attrs["mlflow_run_id"], "eval_loss")
        assert trial.intermediate_values, trial.number
        assert set(trial.intermediate_values) <= {m.step for m in history}, trial.number


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_until_idle(process: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Until ``process`` barely uses the CPU for 3 s: a worker past its setup, waiting for others."""
    deadline, quiet, ticks = time.monotonic() + deadline_s, 0, _cpu_ticks(process.pid)
    while quiet < 3:
        assert process.poll() is None and time.monotonic() < deadline, "the waiting worker never settled"
        time.sleep(1)
        ticks, before = _cpu_ticks(process.pid), ticks
        quiet = quiet + 1 if ticks - before <= 10 else 0


def test_workers_ride_out_a_postgresql_stop_and_start(
    study_yaml: Path, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """The server is stopped for longer than the grace period: one worker trains, one waits.

    Every heartbeat, report and attr written meanwhile waits for the database. Once it is back,
    the waiting worker looks for dead workers' trials every second, while the training worker's
    heartbeat (every 5 s) is still to be written: it must not fail that live trial as stale. (With
    equal intervals, which of the two reaches the database first is chance.) The password comes
    from HARNESS_STORAGE_PASSWORD: the URL the workers are given has none.
    """
    storage = private_postgres.create_database("study")
    overrides = [
        f"storage={storage.replace(f':{PASSWORD}@', '@')}",
        "n_trials=1",
        "search_space.method=lora",
        "search_space.epochs=150",  # about 45 s of training: through the waiting worker's start and the outage
        "search_space.batch_size=4",
        "evaluation.enabled=false",
        "workers.grace_period_s=10",
    ]
    env = {"HARNESS_STORAGE_PASSWORD": PASSWORD}
    (training,) = _workers(study_yaml, [*overrides, "workers.heartbeat_interval_s=5"], 1, env)
    wait_for_a_running_trial(storage, {training.pid}, deadline_s=300)
    # The study's one trial runs: this worker waits, looking for stale trials every second.
    (waiting,) = _workers(study_yaml, [*overrides, "workers.heartbeat_interval_s=1"], 1, env)
    wait_until_idle(waiting, deadline_s=300)
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.RUNNING], "the trial ended before the outage"
    first_start = private_postgres.started_at()
    private_postgres.stop()
    try:
        time.sleep(15)  # well past the grace period
    finally:
        private_postgres.start()
    assert private_postgres.started_at() > first_start  # it really went away
    study = optuna.load_study(study_name="tiny", storage=storage)  # new connections: the old ones died
    assert [t.state for t in study.trials] == [TrialState.RUNNING], "the trial ended during the outage"
    _finish([training, waiting])

    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]  # not failed as stale, not run again
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    (run,) = _trial_runs(client)
    assert run.info.status == "FINISHED" and "harness.error" not in run.data.tags
    _assert_every_report_logged(study, client)


def test_a_tracking_server_away_for_20_s_mid_trial_loses_nothing(
    study_yaml: Path, mlflow_server_process: MlflowServer, postgres_databases: Callable[[], str]
) -> None:
    """Training goes on while the server is away; the loss points of those 20 s reach it later.

    Every train_loss step is in MLflow exactly once, from the first to the last step of the last
    epoch, and some were taken while the server was away: kept by the worker, not dropped.
    MLflow's own HTTP retries are off in the worker, so that a batch fails at once, as it does after
    an outage longer than those retries (minutes): the harness's keeping and resending is under test.
    """
    server = mlflow_server_process
    storage = postgres_databases()
    epochs = 250  # about 75 s of training (10 steps a second here): through the whole outage
    overrides = [
        f"mlflow.tracking_uri={server.url}",
        f"storage={storage}",
        "n_trials=1",
        "search_space.method=lora",
        f"search_space.epochs={epochs}",
        "search_space.batch_size=4",
        "evaluation.enabled=false",
        "training.logging_steps=1",
    ]
    (worker,) = _workers(study_yaml, overrides, 1, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    running = wait_for_a_running_trial(storage, {worker.pid}, deadline_s=300)
    run_id = optuna.load_study(study_name="tiny", storage=storage).trials[running.number].user_attrs["mlflow_run_id"]
    client = MlflowClient(server.url)
    while not client.get_metric_history(run_id, "train_loss"):  # training, and logging
        assert worker.poll() is None, worker.communicate()[1].decode(errors="replace")[-3000:]
        time.sleep(0.5)
    away_from = int(time.time() * 1000)
    server.stop()
    time.sleep(20)
    assert worker.poll() is None  # still training, not failed for want of the server
    away_until = int(time.time() * 1000)
    server.start()
    _finish([worker])

    study = optuna.load_study(study_name="tiny", storage=storage)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    train_loss = client.get_metric_history(run_id, "train_loss")
    epoch = client.get_metric_history(run_id, "epoch")
    last_step = max(m.step for m in epoch)
    assert max(m.value for m in epoch) == pytest.approx(epochs)  # the end of training reached the server
    assert sorted(m.step for m in train_loss) == list(range(1, last_step + 1))  # each step once, none lost
    during = [m.step for m in train_loss if away_from <= m.timestamp <= away_until]
    assert during, "no loss point was taken while the server was away: the outage missed the training"
    _assert_every_report_logged(study, client)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
