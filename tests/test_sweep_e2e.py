"""End to end: real training of a tiny Llama, read back from MLflow and Optuna."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.config import load_config
from harness.study import run_sweep
from harness.study.resume import retry_of

pytestmark = pytest.mark.slow
NO_EVAL = ["evaluation.enabled=false"]


def child_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    return sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: int(r.data.tags["harness.trial_number"])
    )


def test_two_trial_sweep_logs_curves_and_resumes(study_yaml: Path) -> None:
    config = load_config(study_yaml, NO_EVAL)
    result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)

    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    runs = child_runs(client, "tiny")
    assert [r.info.run_id for r in runs] == [t.user_attrs["mlflow_run_id"] for t in study.trials]
    for run, trial in zip(runs, study.trials, strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert {"epochs", "batch_size", "lr_multiplier", "dropout", "method"} <= set(run.data.params)
        assert run.data.params["method"] == trial.params["method"]
        # what it trained on: this machine has no GPU
        assert run.data.tags["harness.device.kind"] == "cpu" and run.data.tags["harness.device.name"]
        assert int(run.data.tags["harness.device.count"]) >= 1
        train_curve = client.get_metric_history(run.info.run_id, "train_loss")
        eval_curve = client.get_metric_history(run.info.run_id, "eval_loss")
        assert len(train_curve) >= 3 and len({m.step for m in train_curve}) == len(train_curve)
        assert len(eval_curve) >= 2
        for name in ("learning_rate", "grad_norm", "tokens_per_second"):
            assert client.get_metric_history(run.info.run_id, name), name
        assert run.data.metrics["objective"] == pytest.approx(trial.value)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["best.trial_number"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"trials.json", "config.json", "plots"} <= artifacts

    # Same study name again with a higher target: finished trials are not rerun.
    again = run_sweep(load_config(study_yaml, [*NO_EVAL, "n_trials=3"]))
    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert again.parent_run_id == result.parent_run_id
    assert len(child_runs(client, "tiny")) == 3


def test_full_and_lora_trials_leave_the_shared_base_untouched(study_yaml: Path) -> None:
    from harness import models

    config = load_config(
        study_yaml,
        [
            *NO_EVAL,
            "sampler.type=grid",
            "search_space.batch_size=2",
            "search_space.dropout=0.0",
            "search_space.lr_multiplier=1.0",
        ],
    )
    base = models.load_base(config.base_model)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    run_sweep(config)
    after = base.state_dict()
    assert before.keys() == after.keys()
    assert all((before[k] == after[k]).all() for k in before)
    assert not any("lora" in name for name, _ in base.named_modules())


def test_a_grid_smaller_than_n_trials_ends_the_study_when_done(study_yaml: Path) -> None:
    grid = [
        "sampler.type=grid",
        "search_space.batch_size=2",
        "search_space.dropout=0.0",
        "search_space.lr_multiplier=1.0",
    ]
    config = load_config(study_yaml, [*NO_EVAL, *grid, "n_trials=5"])
    result = run_sweep(config)
    assert sorted(t.params["method"] for t in result.study.trials) == ["full", "lora"]  # each point once
    assert MlflowClient(config.mlflow.tracking_uri).get_run(result.parent_run_id).info.status == "FINISHED"


def test_sigkill_mid_trial_then_resume(study_yaml: Path, tmp_path: Path) -> None:
    heartbeat = ["workers.heartbeat_interval_s=1", "workers.grace_period_s=3"]
    overrides = [*NO_EVAL, *heartbeat, "n_trials=1", "search_space.epochs=200", "search_space.method=lora"]
    config = load_config(study_yaml, overrides)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    with (tmp_path / "sweep.err").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "sweep", str(study_yaml), *overrides],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    storage = config.storage
    deadline = time.time() + 420
    while time.time() < deadline and process.poll() is None:
        time.sleep(2)
        if not (tmp_path / "mlruns" / "optuna.db").exists():
            continue
        try:
            study = optuna.load_study(study_name="tiny", storage=storage)
        except (KeyError, sqlalchemy.exc.SQLAlchemyError):
            continue  # the sweep has not created the study (or its tables) yet
        if study.trials and study.trials[0].user_attrs.get("mlflow_run_id"):
            time.sleep(3)  # well into training
            break
    else:
        process.kill()
        pytest.fail(f"the sweep never started a trial: {(tmp_path / 'sweep.err').read_text()[-2000:]}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_run = study.trials[0].user_attrs["mlflow_run_id"]
    client = MlflowClient(config.mlflow.tracking_uri)
    assert client.get_run(killed_run).info.status == "RUNNING"  # SIGKILL: nothing could run
    time.sleep(4)  # past the grace period: its heartbeats have stopped

    resume = [*NO_EVAL, *heartbeat, "n_trials=1", "search_space.epochs=1", "search_space.method=lora"]
    result = run_sweep(load_config(study_yaml, resume))
    assert result.reconciled == [0]
    assert client.get_run(killed_run).info.status == "FAILED"
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert retry_of(study.trials[1]) == 0
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"


def test_sweep_scores_every_trial_and_the_baseline(study_yaml: Path, tmp_path: Path) -> None:
    overrides = [
        "evaluation.train_sample_size=1",
        "evaluation.heldout_sample_size=2",
        "evaluation.max_new_tokens=12",
        f"evaluation.judge.cache_path={tmp_path}/judge.sqlite",
        "evaluation.judge.concurrency=1",
        "evaluation.judge.max_tokens=120",
        "evaluation.judge.check_size=2",
    ]
    config = load_config(study_yaml, overrides)
    result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)  # load_table searches through the fluent API
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])}
    assert {"baseline", "trial-0", "trial-1"} <= set(runs)
    for name in ("baseline", "trial-0", "trial-1"):
        run = runs[name]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        metrics = run.data.metrics
        for split in ("train", "heldout"):
            assert -1.0 <= metrics[f"consistency/{split}/embedding"] <= 1.0
            assert 0.0 <= metrics[f"consistency/{split}/rouge_l"] <= 1.0
            judged = 2 if split == "heldout" else 1
            missing = metrics[f"consistency/{split}/judge_missing"]
            assert missing == judged or 0 <= metrics[f"consistency/{split}/judge"] <= 100
        assert run.data.params["judge_rubric_hash"]
        table = client.load_table(run.info.experiment_id, "eval/heldout.json", run_ids=[run.info.run_id])
        assert len(table) == 2 and {"question", "reference", "answer", "embedding", "rouge_l", "judge"} <= set(
            table.columns
        )
    # Trial answers differ from the baseline's, but the judge cache is keyed by content:
    # a second identical study costs no judge calls.
    assert runs["trial-0"].data.metrics["judge_calls"] + runs["trial-0"].data.metrics["judge_cache_hits"] == 3
    # The baseline's answers are greedy from the same base: a second study re-judges nothing.
    second = run_sweep(load_config(study_yaml, [*overrides, "study_name=tiny-again", "n_trials=1"]))
    again = client.search_runs(
        [client.get_experiment_by_name("tiny-again").experiment_id], "attributes.run_name = 'baseline'"
    )
    assert second.parent_run_id and again[0].data.metrics["judge_calls"] == 0
    assert again[0].data.metrics["judge_cache_hits"] == 3
