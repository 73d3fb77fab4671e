"""A real local Ray runs the study's workers: one killed mid-trial is started again by Ray, and
the study completes with no trial lost or run twice, under one parent run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.study.resume import retry_of
from tests.study.test_workers_e2e import FAST_EVALUATION, wait_for_a_running_trial

pytestmark = pytest.mark.slow
# Each worker trains on one thread: two of them fit this machine's two cores.
LAUNCH = [sys.executable, "-m", "harness.cli", "launch", "ray", "--workers", "2", "--cpus-per-worker", "1"]


def _launch(study_yaml: Path, overrides: list[str], log: Path) -> subprocess.Popen[bytes]:
    # RAY_AUTH_MODE=token: a driver joining a cluster that `ray start` began must send its token.
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "RAY_DEDUP_LOGS": "0", "RAY_AUTH_MODE": "token"}
    with log.open("wb") as out:
        return subprocess.Popen([*LAUNCH, str(study_yaml), *overrides], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_a_ray_worker_killed_mid_trial_is_restarted_and_the_study_completes(
    study_yaml: Path, postgres_url: str, tmp_path: Path
) -> None:
    overrides = [
        f"storage={postgres_url}",
        "n_trials=4",
        "search_space.method=lora",
        "search_space.epochs=5",
        *FAST_EVALUATION,
        "workers.heartbeat_interval_s=1",
        "workers.grace_period_s=4",
    ]
    log = tmp_path / "launch.log"
    launcher = _launch(study_yaml, overrides, log)
    try:
        victim = wait_for_a_running_trial(postgres_url, None, deadline_s=300)
        assert "ray" in Path(f"/proc/{victim.pid_of}/cmdline").read_text(errors="replace").lower()  # a Ray worker
        os.kill(victim.pid_of, signal.SIGKILL)  # its process dies as on a lost node: Ray runs the task again
        assert launcher.wait(timeout=900) == 0, log.read_text()[-4000:]
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=180)
    # Each worker's lines come prefixed by its task's name; the killed one's task ran again, elsewhere.
    processes: dict[str, set[int]] = {}
    for name, pid in re.findall(r"\((harness-worker-\d) pid=(\d+)\)", log.read_text()):
        processes.setdefault(name, set()).add(int(pid))
    assert set(processes) == {"harness-worker-0", "harness-worker-1"}
    (killed_task,) = [name for name, pids in processes.items() if victim.pid_of in pids]
    assert len(processes[killed_task]) == 2  # Ray started the task again in a new process

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if retry_of(t) == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == killed.params
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) >= 4
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    numbers = [r.data.tags["harness.trial_number"] for r in runs if "harness.trial_number" in r.data.tags]
    assert len(numbers) == len(set(numbers)) == len(study.trials)  # no trial number twice, none without a run
    parents = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    killed_run = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "FAILED" and "heartbeats" in killed_run.data.tags["harness.error"]
    for trial in study.trials:
        if trial.state == TrialState.COMPLETE:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.data.tags["harness.device.kind"] == "cpu" and run.data.tags["harness.device.count"] == "1"


def test_more_workers_than_the_cluster_can_place_is_refused_with_what_it_has(study_yaml: Path, tmp_path: Path) -> None:
    """A Ray started here has no GPU to give: asking for one per worker is said at once, not queued."""
    log = tmp_path / "launch.log"
    launcher = _launch(study_yaml, ["--gpus-per-worker", "1"], log)
    assert launcher.wait(timeout=300) == 2, log.read_text()[-3000:]
    message = " ".join(log.read_text().split())
    assert "2 workers of 1 CPU + 1 GPU each: the cluster can place 0 at once" in message


def test_a_running_ray_too_small_for_the_workers_says_what_its_nodes_offer(study_yaml: Path, tmp_path: Path) -> None:
    """`--address` of a Ray started apart (`ray start --head`): joined, measured, refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = Path(sys.executable).with_name("ray")
    small = ["--num-cpus=1", "--num-gpus=0", "--include-dashboard=false", "--object-store-memory=100000000"]
    head = subprocess.Popen(
        [str(ray), "start", "--head", f"--port={port}", *small, "--block"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_answering(port, head)
        log = tmp_path / "launch.log"
        launcher = _launch(study_yaml, ["--address", f"127.0.0.1:{port}"], log)
        assert launcher.wait(timeout=300) == 2, log.read_text()[-3000:]
    finally:
        head.terminate()  # --block: the head takes its processes down with it
        head.wait(timeout=120)
    message = " ".join(log.read_text().split())
    assert re.search(r"2 workers of 1 CPU each: the cluster can place 1 at once \([\d.]+: 1 CPU 0 GPU\)", message)


def _wait_until_answering(port: int, head: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert head.poll() is None, "ray start --head exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the Ray head never answered"
            time.sleep(1)


def test_ctrl_c_cancels_the_workers_whose_trials_close_killed_and_run_again_on_resume(
    study_yaml: Path, postgres_url: str, tmp_path: Path
) -> None:
    overrides = [f"storage={postgres_url}", "n_trials=4", "search_space.method=lora", "search_space.epochs=40"]
    overrides += ["evaluation.enabled=false", "workers.heartbeat_interval_s=1", "workers.grace_period_s=4"]
    log = tmp_path / "launch.log"
    launcher = _launch(study_yaml, overrides, log)
    try:
        running = wait_for_a_running_trial(postgres_url, None, deadline_s=300)
        launcher.send_signal(signal.SIGINT)  # Ctrl-C: Ray cancels each task with a KeyboardInterrupt
        assert launcher.wait(timeout=300) == 130, log.read_text()[-3000:]
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert "every worker closed its runs" in " ".join(log.read_text().split())

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = study.trials[running.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["harness.interrupted"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    assert client.get_run(interrupted.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    assert parent.info.status == "KILLED"
