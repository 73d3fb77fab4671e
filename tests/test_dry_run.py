"""Every shipped study config dry-runs with every sampler: no traceback, no request, no credentials,
and nothing written where it runs."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "experiments").rglob("*.yaml"))
# Its base is the model sft.yaml registers: on a fresh store there is none yet.
NEEDS_SFT = REPO / "experiments" / "sft_then_dpo" / "dpo.yaml"
SAMPLERS = ("tpe", "random", "grid", "cmaes")
runner = CliRunner()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No keys, and any attempt at the network fails the test; runs in a fresh copy of the
    repository's experiments (the shipped configs name their data relative to it)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a dry run tried the network: {args[1:]!r}")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    workdir = tmp_path / "checkout"
    for folder in ("experiments", "evals"):
        shutil.copytree(REPO / folder, workdir / folder)
    monkeypatch.chdir(workdir)
    return workdir


def listing(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def test_every_shipped_config_is_covered() -> None:
    shipped = {str(p.relative_to(REPO / "experiments")) for p in CONFIGS}
    expected = {"quickstart.yaml", "openai_seed_rounds.yaml", "azure_seed_rounds.yaml"}
    assert shipped >= expected | {"sft_then_dpo/sft.yaml", "sft_then_dpo/dpo.yaml"}
    for config in CONFIGS:  # only study configs live here: `harness sweep experiments/...` takes any
        load_config(config)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "experiments")))
def test_dry_run(config: Path, sampler: str, offline: Path) -> None:
    override = f"sampler.type={sampler}"
    before = listing(offline)
    result = runner.invoke(app, ["sweep", str(config.relative_to(REPO)), override, "--dry-run"])
    output = result.output
    assert listing(offline) == before, "a dry run wrote in its working directory"

    # A grid of a continuous range would be infinite: the product says so instead of sampling.
    continuous = load_config(config).search_space.continuous_ranges() if sampler == "grid" else []
    if continuous:
        assert result.exit_code == 2, output
        assert "sampler.type: grid" in output and all(name in output for name in continuous)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return
    if config == NEEDS_SFT:  # a fresh store: say what to run first, in one line
        assert result.exit_code == 2, output
        assert "base_model 'models:/programmer_sft@champion'" in output
        assert "harness sweep experiments/sft_then_dpo/sft.yaml" in output
        assert "harness promote experiments/sft_then_dpo/sft.yaml" in output
        assert isinstance(result.exception, SystemExit)
        return
    assert result.exit_code == 0, f"{output}\n{result.exception!r}"
    assert "trial 0" in output
    if "openai" in config.stem:
        assert "no request made" in output and "POST /fine_tuning/jobs" in output


def test_an_exhausted_grid_shows_fewer_trials(offline: Path) -> None:
    # openai_seed_rounds' grid has 3 x 2 = 6 points: asking for 10 shows the 6, then stops.
    args = ["sweep", "experiments/openai_seed_rounds.yaml", "sampler.type=grid", "n_trials=10", "--dry-run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trial 5:" in result.output and "trial 6:" not in result.output
    assert "for 6 trial(s)" in result.output


def test_a_store_without_the_promoted_base_says_to_promote_it(offline: Path) -> None:
    uri = f"sqlite:///{offline}/store/mlflow.db"  # absolute: MLflow caches stores by URI
    MlflowClient(uri, uri).create_registered_model("programmer_sft")  # swept, never promoted
    before = listing(offline)
    override = f"mlflow.tracking_uri={uri}"
    result = runner.invoke(app, ["sweep", "experiments/sft_then_dpo/dpo.yaml", override, "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "programmer_sft has no alias 'champion'" in result.output
    assert "`harness promote` the study that registers programmer_sft first" in result.output
    assert listing(offline) == before
