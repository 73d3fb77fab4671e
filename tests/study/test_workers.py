"""Workers started by ``sweep --workers N`` on one machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.study.workers import PlacementError, placed_envs, thread_env
from tests.study.sweeps import sweep_settings


def test_workers_share_the_cores_unless_told_otherwise() -> None:
    assert thread_env({}, 2, 16)["OMP_NUM_THREADS"] == "8"
    assert thread_env({}, 4, 2)["OMP_NUM_THREADS"] == "1"
    assert thread_env({"OMP_NUM_THREADS": "3", "X": "y"}, 2, 16) == {"OMP_NUM_THREADS": "3", "X": "y"}


def test_each_worker_sees_its_own_gpu_and_its_share_of_the_cores() -> None:
    envs = placed_envs({"PATH": "/bin"}, 2, 16, ["0", "1", "2", "3"], None)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"8"} and {e["PATH"] for e in envs} == {"/bin"}
    pairs = placed_envs({}, 2, 16, ["4", "5", "6", "7"], 2)  # the ids the parent was given, in order
    assert [e["CUDA_VISIBLE_DEVICES"] for e in pairs] == ["4,5", "6,7"]


def test_without_gpus_workers_share_the_cpu_as_before() -> None:
    assert placed_envs({}, 3, 6, [], None) == [{"OMP_NUM_THREADS": "2"}] * 3
    # --gpus-per-worker 0 where there are GPUs: each worker trains on the CPU, seeing none
    assert {e["CUDA_VISIBLE_DEVICES"] for e in placed_envs({}, 2, 4, ["0"], 0)} == {""}


def test_more_gpus_than_the_machine_has_is_refused_with_the_count() -> None:
    with pytest.raises(
        PlacementError, match=r"--workers 4 x --gpus-per-worker 1 = 4 GPUs; this machine has 2 visible \(0,1\)"
    ):
        placed_envs({}, 4, 8, ["0", "1"], None)
    with pytest.raises(PlacementError, match="= 2 GPUs; this machine has none visible"):
        placed_envs({}, 2, 8, [], 1)


def test_sweep_asking_for_gpus_on_a_machine_without_exits_2_before_any_worker(tmp_path: Path) -> None:
    settings = sweep_settings(tmp_path, f"sqlite:///{tmp_path}/optuna.db")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(app, ["sweep", str(path), "--workers", "2", "--gpus-per-worker", "1"])
    assert result.exit_code == 2
    assert "--workers 2 x --gpus-per-worker 1 = 2 GPUs; this machine has none visible" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "optuna.db").exists()  # refused before the study was opened
