"""A study tracked on a real MLflow server (PostgreSQL backend, artifacts served over HTTP) with
its Optuna study in PostgreSQL: what a team shares, read back through the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.lifecycle import serving
from harness.study import run_sweep

pytestmark = pytest.mark.slow


def test_a_sweep_on_a_tracking_server_logs_serves_and_registers_through_it(
    study_yaml: Path,
    mlflow_server: str,
    postgres_databases: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may land in the current directory
    overrides = [
        f"mlflow.tracking_uri={mlflow_server}",
        f"storage={postgres_databases()}",
        "n_trials=2",
        "search_space.method=lora",
        "evaluation.scorers=[rouge_l,structure,detail]",
        "evaluation.train_sample_size=1",
        "evaluation.heldout_sample_size=2",
        "evaluation.max_new_tokens=8",
    ]
    config = load_config(study_yaml, overrides)
    result = run_sweep(config)

    client = MlflowClient(mlflow_server)
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    trials = [r for r in runs if "harness.trial_number" in r.data.tags]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    for run in trials:
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) >= 2
        served = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"weights", "eval"} <= served  # adapter and per-example tables, over HTTP
    assert any((tmp_path / "served-artifacts").rglob("adapter_config.json"))
    versions = client.search_model_versions("name='tiny'")
    assert len(versions) == 1

    # Another machine: no local work dir, only the server.
    import shutil

    shutil.rmtree(tmp_path / "work")
    model = serving.load("models:/tiny/1", mlflow_server)
    answer = model.predict(["How do I reverse a list?"], params={"max_new_tokens": 4})
    assert isinstance(answer[0], str)
    assert list(cwd.iterdir()) == []
