"""Several workers on one study in PostgreSQL: setup, baseline and registration happen once;
a worker killed mid-trial loses nothing and repeats nothing, and every trial is still scored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study.resume import retry_of

pytestmark = pytest.mark.slow

FAST_EVALUATION = [
    "evaluation.scorers=[rouge_l,structure,detail]",
    "evaluation.train_sample_size=1",
    "evaluation.heldout_sample_size=2",
    "evaluation.max_new_tokens=8",
]
SCORED = "consistency/heldout/consistency_vs_baseline"  # a held-out score compared with the baseline


def test_sweep_with_two_workers_shares_one_study_parent_baseline_and_version(
    study_yaml: Path, postgres_url: str, tmp_path: Path
) -> None:
    overrides = [
        f"storage={postgres_url}",
        "n_trials=4",
        "search_space.method=lora",
        *FAST_EVALUATION,
    ]
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-m", "harness.cli", "sweep", str(study_yaml), *overrides, "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert 4 <= len(complete) <= 5  # two workers asking at the same instant may overshoot by one
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert len({t.user_attrs["harness.worker"] for t in study.trials}) == 2  # both worked

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    baselines = [r for r in runs if r.data.tags.get("harness.role") == "baseline"]
    assert len(parents) == 1 and len(baselines) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and baselines[0].info.status == "FINISHED"
    trial_runs = [r for r in runs if "harness.trial_number" in r.data.tags]
    assert sorted(r.info.run_id for r in trial_runs) == sorted(t.user_attrs["mlflow_run_id"] for t in study.trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in trial_runs + baselines} == {parent.info.run_id}
    for run in trial_runs:  # every trial compared with the one baseline
        assert SCORED in run.data.metrics
    assert len(client.search_model_versions("name='tiny'")) == 1


def test_a_worker_killed_mid_trial_leaves_nothing_lost_or_repeated(
    study_yaml: Path, postgres_url: str, tmp_path: Path
) -> None:
    overrides = [
        f"storage={postgres_url}",
        "n_trials=5",
        "search_space.method=lora",
        "search_space.epochs=5",
        *FAST_EVALUATION,
        "workers.heartbeat_interval_s=1",
        "workers.grace_period_s=4",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "harness.cli", "worker", str(study_yaml), *overrides, "--quiet"]
    workers = {p.pid: p for p in (subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(3))}
    victim = wait_for_a_running_trial(postgres_url, set(workers), deadline_s=300)
    time.sleep(1)  # well into training
    os.kill(victim.pid_of, signal.SIGKILL)
    survivors = [p for pid, p in workers.items() if pid != victim.pid_of]
    for process in survivors:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr.decode()[-3000:]
    workers[victim.pid_of].wait()

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    by_number = {t.number: t for t in study.trials}
    killed = by_number[victim.number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if retry_of(t) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params  # its parameters ran again
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) >= 5
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    numbers = [r.data.tags["harness.trial_number"] for r in runs if "harness.trial_number" in r.data.tags]
    assert len(numbers) == len(set(numbers)) == len(study.trials)  # no trial number twice
    killed_run = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "FAILED" and "heartbeats" in killed_run.data.tags["harness.error"]
    parents = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # Evaluation survives the kill: one baseline for all workers, and every complete trial, the
    # killed one's retry included, is scored against it.
    baselines = [r for r in runs if r.data.tags.get("harness.role") == "baseline"]
    assert [b.info.status for b in baselines] == ["FINISHED"]
    assert {b.data.tags["mlflow.parentRunId"] for b in baselines} == {parents[0].info.run_id}
    for trial in study.trials:
        if trial.state == TrialState.COMPLETE:
            assert SCORED in client.get_run(trial.user_attrs["mlflow_run_id"]).data.metrics, trial.number


@dataclass(frozen=True)
class Victim:
    number: int
    pid_of: int


def wait_for_a_running_trial(storage: str, pids: set[int] | None, deadline_s: float) -> Victim:
    """The first trial one of ``pids`` (None: any process) is running, once it has its MLflow run."""
    deadline = time.monotonic() + deadline_s
    # One storage (one connection pool) for every poll: a new one per poll holds its connections
    # until garbage collection, and PostgreSQL refused the workers ("too many clients") in CI.
    opened: optuna.storages.BaseStorage | str = storage
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="tiny", storage=opened)
        except KeyError:
            continue
        opened = study._storage
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            worker, run_id = trial.user_attrs.get("harness.worker", ""), trial.user_attrs.get("mlflow_run_id")
            pid = int(worker.rsplit(":", 1)[1]) if ":" in worker else None
            if run_id and pid is not None and (pids is None or pid in pids):
                return Victim(trial.number, pid)
    pytest.fail("no worker started a trial")
