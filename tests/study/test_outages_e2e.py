"""Services going away under running workers: the study database restarted, the tracking server
stopped for 20 s. Real processes, real PostgreSQL, a real mlflow server; nothing recorded is lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import MlflowServer
from tests.study.test_workers_e2e import wait_for_a_running_trial

pytestmark = pytest.mark.slow
CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def _workers(study_yaml: Path, overrides: list[str], count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "harness.cli", "worker", str(study_yaml), *overrides, "--quiet"]
    return [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(count)]


def _finish(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr.decode()[-3000:]


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


@pytest.mark.skipif(
    shutil.which("pg_ctlcluster") is None and os.environ.get("CI") != "true",
    reason="restarting PostgreSQL needs pg_ctlcluster (Debian's postgresql-common)",
)
def test_workers_ride_out_a_postgresql_stop_and_start(study_yaml: Path, postgres_url: str, tmp_path: Path) -> None:
    overrides = [
        f"storage={postgres_url}",
        "n_trials=4",
        "search_space.method=lora",
        "search_space.epochs=4",
        "evaluation.enabled=false",
        "workers.heartbeat_interval_s=1",
        "workers.grace_period_s=90",  # a restart is not a death: no trial may go stale
    ]
    workers = _workers(study_yaml, overrides, 2)
    wait_for_a_running_trial(postgres_url, {p.pid for p in workers}, deadline_s=300)
    time.sleep(1)  # well into training: reports, heartbeats and attrs are being written
    # Stopped for some seconds, not only restarted: every worker writes while the database is away.
    subprocess.run([*CLUSTER, "stop"], capture_output=True, text=True, timeout=120, check=True)
    try:
        time.sleep(6)
    finally:
        subprocess.run([*CLUSTER, "start"], capture_output=True, text=True, timeout=120, check=True)
    _finish(workers)

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) >= 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # none failed, none left running
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = _trial_runs(client)
    assert len(runs) == len(study.trials) and all(r.info.status == "FINISHED" for r in runs)
    _assert_every_report_logged(study, client)


def test_a_tracking_server_away_for_20_s_mid_trial_loses_nothing(
    study_yaml: Path, mlflow_server_process: MlflowServer, postgres_databases: Callable[[], str]
) -> None:
    server = mlflow_server_process
    storage = postgres_databases()
    overrides = [
        f"mlflow.tracking_uri={server.url}",
        f"storage={storage}",
        "n_trials=1",
        "search_space.method=lora",
        "search_space.epochs=6",
        "evaluation.enabled=false",
        "training.logging_steps=1",
    ]
    (worker,) = _workers(study_yaml, overrides, 1)
    wait_for_a_running_trial(storage, {worker.pid}, deadline_s=300)
    server.stop()
    time.sleep(20)
    assert worker.poll() is None  # still training, not failed for want of the server
    server.start()
    _finish([worker])

    client = MlflowClient(server.url)
    study = optuna.load_study(study_name="tiny", storage=storage)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    (run,) = _trial_runs(client)
    assert run.info.status == "FINISHED"
    train_loss = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in train_loss] == sorted({m.step for m in train_loss}) and len(train_loss) >= 6
    _assert_every_report_logged(study, client)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
