"""`harness launch`: dry runs print what would be submitted; bad input is refused before anything is."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from harness.cli import app
from tests.launch.clusters import config_file

runner = CliRunner()


def test_k8s_dry_run_prints_the_manifests_and_submits_nothing(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    out = tmp_path / "k8s"
    result = runner.invoke(
        app, ["launch", "k8s", str(path), "--image", "img:1", "--out", str(out), "--workers", "3", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds == ["ConfigMap", "Job"]
    assert (out / "job.yaml").read_text() == result.stdout


def test_slurm_dry_run_prints_the_script(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    args = ["launch", "slurm", str(path), "--out", str(tmp_path / "slurm"), "--workers", "2", "--gpus-per-worker", "1"]
    result = runner.invoke(app, [*args, "n_trials=6", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "#SBATCH --array=0-1" in result.stdout and "#SBATCH --gres=gpu:1" in result.stdout
    assert "n_trials: 6" in (tmp_path / "slurm" / "config.yaml").read_text()


def test_ray_dry_run_prints_the_tasks(tmp_path: Path) -> None:
    result = runner.invoke(app, ["launch", "ray", str(config_file(tmp_path)), "--workers", "2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2 tasks harness-worker-0..1" in result.stdout


def test_stores_on_this_machine_are_refused_for_a_cluster_with_the_reason(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    out = str(tmp_path / "out")
    sqlite = runner.invoke(
        app, ["launch", "slurm", str(path), "--workers", "2", "--out", out, "storage=sqlite:///optuna.db"]
    )
    assert sqlite.exit_code == 2
    assert "storage sqlite:///optuna.db is a file on this machine" in " ".join(sqlite.output.split())
    loopback = runner.invoke(
        app,
        [
            "launch",
            "k8s",
            str(path),
            "--workers",
            "2",
            "--image",
            "i",
            "--out",
            out,
            "--tracking-uri",
            "http://127.0.0.1:5000",
        ],
    )
    assert loopback.exit_code == 2
    assert "127.0.0.1, this machine's loopback" in " ".join(loopback.output.split())
    assert not (tmp_path / "out" / "job.yaml").exists()  # nothing written


def test_ray_at_an_address_that_does_not_answer_exits_2_with_the_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(
        app, ["launch", "ray", str(config_file(tmp_path)), "--workers", "2", "--address", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 2
    assert f"Ray at 127.0.0.1:{port} does not answer" in " ".join(result.output.split())


def test_a_kubernetes_submit_without_a_cluster_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = runner.invoke(
        app,
        ["launch", "k8s", str(config_file(tmp_path)), "--workers", "1", "--image", "i", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert "no Kubernetes cluster to submit to" in " ".join(result.output.split())
