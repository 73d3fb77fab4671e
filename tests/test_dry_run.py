"""Every shipped config dry-runs with every sampler: no traceback, no request, no credentials."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "experiments").glob("*.yaml"))
SAMPLERS = ("tpe", "random", "grid", "cmaes")
runner = CliRunner()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No keys, and any attempt at the network fails the test."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a dry run tried the network: {args[1:]!r}")

    monkeypatch.setattr(httpx.Client, "send", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.chdir(REPO)  # the shipped configs name their data relative to the repository


def test_every_shipped_config_is_covered() -> None:
    assert {p.name for p in CONFIGS} >= {"quickstart.yaml", "openai_seed_rounds.yaml", "azure_seed_rounds.yaml"}


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dry_run(config: Path, sampler: str, offline: None) -> None:
    override = f"sampler.type={sampler}"
    result = runner.invoke(app, ["sweep", str(config.relative_to(REPO)), override, "--dry-run"])
    output = result.output

    # A grid of a continuous range would be infinite: the product says so instead of sampling.
    continuous = load_config(config).search_space.continuous_ranges() if sampler == "grid" else []
    if continuous:
        assert result.exit_code == 2, output
        assert "sampler.type: grid" in output and all(name in output for name in continuous)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return
    assert result.exit_code == 0, f"{output}\n{result.exception!r}"
    assert "trial 0" in output
    if "openai" in config.stem:
        assert "no request made" in output and "POST /fine_tuning/jobs" in output


def test_an_exhausted_grid_shows_fewer_trials(offline: None) -> None:
    # openai_seed_rounds' grid has 3 x 2 = 6 points: asking for 10 shows the 6, then stops.
    args = ["sweep", "experiments/openai_seed_rounds.yaml", "sampler.type=grid", "n_trials=10", "--dry-run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trial 5:" in result.output and "trial 6:" not in result.output
    assert "for 6 trial(s)" in result.output
