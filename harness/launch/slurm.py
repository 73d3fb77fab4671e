"""A study's workers as a Slurm job array: one array task per worker, each running ``harness worker``
with the config written beside the script; secrets come from the environment sbatch runs in."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.config import StudyConfig
from harness.launch.spec import (
    STORAGE_ENV,
    TRACKING_ENV,
    LaunchError,
    Workers,
    data_files,
    job_name,
    secret_names,
    worker_settings,
)

SCRIPT = "harness-worker.sbatch"


@dataclass(frozen=True)
class SlurmJob:
    workers: Workers
    out: Path  # the script, the config and the workers' logs go here (a filesystem the nodes share)
    command: str = "harness"  # how a node starts the harness (a venv's bin/harness, say)
    partition: str | None = None
    time_limit: str | None = None  # sbatch --time, e.g. 1-00:00:00


def write(config: StudyConfig, job: SlurmJob) -> Path:
    """Write the config and the sbatch script into ``job.out``; the script's path."""
    job.out.mkdir(parents=True, exist_ok=True)
    (job.out / "logs").mkdir(exist_ok=True)
    settings = worker_settings(config, {key: str(path.resolve()) for key, path in data_files(config).items()})
    (job.out / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    script = job.out / SCRIPT
    script.write_text(sbatch_script(config, job))
    return script


def sbatch_script(config: StudyConfig, job: SlurmJob) -> str:
    """The array job: ``--array=0-(N-1)``, its CPUs and (``--gres=gpu:G``) GPUs per worker."""
    out = job.out.resolve()
    workers = job.workers
    directives = [
        f"--job-name={job_name(config.study_name)}",
        f"--array=0-{workers.count - 1}",
        "--ntasks=1",
        f"--cpus-per-task={max(1, int(workers.cpus))}",
        f"--output={out}/logs/worker-%a.log",
        "--open-mode=append",
        "--requeue",  # a preempted or lost node's worker runs again; its trial is retried by the others
    ]
    if workers.gpus:
        directives.append(f"--gres=gpu:{workers.gpus}")
    if job.partition:
        directives.append(f"--partition={job.partition}")
    if job.time_limit:
        directives.append(f"--time={job.time_limit}")
    secrets = " ".join(secret_names(config))
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        "set -euo pipefail",
        f"# Secrets ({secrets}) come from the environment sbatch ran in; none is written here.",
        f"export {STORAGE_ENV}={shlex.quote(config.storage)}",
        f"export {TRACKING_ENV}={shlex.quote(config.mlflow.tracking_uri)}",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}" PYTHONUNBUFFERED=1',
        f'echo "worker ${{SLURM_ARRAY_TASK_ID}} of {workers.count} on $(hostname)"',
        f"exec srun {shlex.join([*shlex.split(job.command), 'worker', str(out / 'config.yaml')])} "
        f'--storage "${STORAGE_ENV}" --tracking-uri "${TRACKING_ENV}" --quiet',
    ]
    return "\n".join(lines) + "\n"


def submit(script: Path) -> str:
    """``sbatch`` the script; what sbatch said (the job id)."""
    if shutil.which("sbatch") is None:
        raise LaunchError(f"sbatch is not on PATH here: submit {script} on a machine of the cluster (sbatch {script})")
    done = subprocess.run(["sbatch", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LaunchError(f"sbatch refused {script}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()
