"""The sbatch job array: valid bash, the directives asked for, no secret in it, the config beside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from harness.config import parse_study
from harness.launch.slurm import SlurmJob, write
from harness.launch.spec import Workers
from tests.launch.clusters import STORAGE, TRACKING, cluster_config


def directives(script: str) -> list[str]:
    return re.findall(r"^#SBATCH (\S+)", script, flags=re.MULTILINE)


def test_an_array_of_n_workers_with_a_gpu_each_passes_bash_n(tmp_path: Path) -> None:
    out = tmp_path / "job"
    job = SlurmJob(Workers(4, 8, 1), out, command="/opt/venv/bin/harness", partition="gpu", time_limit="1-00:00:00")
    script = write(cluster_config(tmp_path), job)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False).returncode == 0
    text = script.read_text()
    found = directives(text)
    for wanted in ("--array=0-3", "--gres=gpu:1", "--cpus-per-task=8", "--partition=gpu", "--time=1-00:00:00"):
        assert wanted in found, (wanted, found)
    assert "--job-name=harness-tiny-study" in found
    assert f"--output={out.resolve()}/logs/worker-%a.log" in found
    assert f"exec srun /opt/venv/bin/harness worker {out.resolve()}/config.yaml" in text
    assert f"export HARNESS_STORAGE={STORAGE}" in text and f"export MLFLOW_TRACKING_URI={TRACKING}" in text


def test_without_gpus_no_gres_and_the_config_beside_the_script_names_absolute_data(tmp_path: Path) -> None:
    script = write(cluster_config(tmp_path), SlurmJob(Workers(2), tmp_path / "job"))
    assert "--array=0-1" in directives(script.read_text())
    assert not [d for d in directives(script.read_text()) if d.startswith("--gres")]
    config = parse_study(yaml.safe_load((tmp_path / "job" / "config.yaml").read_text()))
    assert config.data.train_file == (tmp_path / "train.jsonl").resolve()
    assert "HARNESS_STORAGE_PASSWORD" in script.read_text()  # named as what the environment gives, no value
    assert not re.search(r"HARNESS_STORAGE_PASSWORD=", script.read_text())
