"""Several workers on one study in PostgreSQL: setup, baseline and registration happen once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


def test_sweep_with_two_workers_shares_one_study_parent_baseline_and_version(
    study_yaml: Path, postgres_url: str, tmp_path: Path
) -> None:
    overrides = [
        f"storage={postgres_url}",
        "n_trials=4",
        "search_space.method=lora",
        "evaluation.scorers=[rouge_l,structure,detail]",
        "evaluation.train_sample_size=1",
        "evaluation.heldout_sample_size=2",
        "evaluation.max_new_tokens=8",
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
        assert "consistency/heldout/consistency_vs_baseline" in run.data.metrics
    assert len(client.search_model_versions("name='tiny'")) == 1
