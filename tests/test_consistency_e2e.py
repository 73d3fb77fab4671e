"""A study scores every trial against the baseline, and a weak judge never decides the objective."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.evaluation.tables import load_rows
from harness.study import WeakJudgeError, run_sweep
from tests.evaluation.fake_judges import random_judge
from tests.evaluation.fake_server import FakeState, fake_server

pytestmark = pytest.mark.slow
METRIC = "consistency/heldout/consistency"
SCORED = [
    "evaluation.scorers=[rouge_l,structure,detail]",
    "evaluation.heldout_sample_size=3",
    "evaluation.max_new_tokens=16",
    f"objective.metric={METRIC}",
    "objective.direction=maximize",
    "n_trials=1",
    "search_space.method=lora",
    "search_space.batch_size=4",
]


def runs_by_name(client: MlflowClient, study: str) -> dict[str, list]:
    experiment = client.get_experiment_by_name(study)
    found: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id]) if experiment else []:
        found.setdefault(run.info.run_name, []).append(run)
    return found


def test_trials_carry_paired_intervals_against_the_baseline(study_yaml: Path) -> None:
    config = load_config(study_yaml, SCORED)
    result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    runs = runs_by_name(client, "tiny")
    baseline, trial = runs["baseline"][0].data.metrics, runs["trial-0"][0].data.metrics
    assert baseline["eval_loss"] > 0  # the before-picture of the loss
    assert 0.0 <= baseline[METRIC] <= 1.0 and 0.0 <= trial[METRIC] <= 1.0
    for scorer in ("rouge_l", "structure", "detail", "consistency"):
        name = f"consistency/heldout/{scorer}_vs_baseline"
        assert trial[f"{name}_ci_low"] <= trial[name] <= trial[f"{name}_ci_high"]
        assert trial[name] == pytest.approx(
            trial[f"consistency/heldout/{scorer}"] - baseline[f"consistency/heldout/{scorer}"]
        )
    assert trial["eval_seconds"] >= trial["eval_generation_seconds"] > 0
    table = load_rows(client, runs["trial-0"][0].info.run_id, "train")
    assert len(table) == 3  # an equal-size train sample
    assert all(row["id"].startswith("train.jsonl:") for row in table)

    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert study.metric_names == [METRIC]  # optuna-dashboard shows the name, not "Objective 0"
    mean, low, high = study.trials[0].user_attrs["harness.vs_baseline"][METRIC]
    assert low <= mean <= high
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["best.trial_number"] == "0"

    # Resuming reuses the finished baseline: one baseline run, and the new trial is compared with it.
    run_sweep(load_config(study_yaml, [*SCORED, "n_trials=2"]))
    runs = runs_by_name(client, "tiny")
    assert len(runs["baseline"]) == 1
    assert f"{METRIC}_vs_baseline" in runs["trial-1"][0].data.metrics


def judged(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "evaluation.scorers=[rouge_l,judge]",
        "evaluation.judge.kind=base_url",
        f"evaluation.judge.base_url={url}",
        "evaluation.judge.model=fake",
        "evaluation.judge.check_size=4",
        "evaluation.judge.max_retries=0",
        f"evaluation.judge.cache_path={tmp_path}/judge.sqlite",
        "evaluation.heldout_sample_size=2",
        "evaluation.max_new_tokens=8",
        "n_trials=1",
        "search_space.method=lora",
        *extra,
    ]


def test_a_weak_judge_in_the_objective_is_refused_before_any_run(study_yaml: Path, tmp_path: Path) -> None:
    with fake_server(FakeState(reply=random_judge)) as url:
        config = load_config(
            study_yaml,
            judged(url, tmp_path, "objective.metric=consistency/heldout/judge", "objective.direction=maximize"),
        )
        with pytest.raises(WeakJudgeError, match="allow-weak-judge"):
            run_sweep(config)
    assert runs_by_name(MlflowClient(config.mlflow.tracking_uri), "tiny") == {}
    assert optuna.load_study(study_name="tiny", storage=config.storage).trials == []


def test_a_weak_judge_never_prunes_or_picks_checkpoints_even_when_allowed(study_yaml: Path, tmp_path: Path) -> None:
    """--allow-weak-judge lets a weak judge into the final objective, not into the checkpoints."""
    objective = ("objective.metric=consistency/heldout/judge", "objective.direction=maximize")
    allowed = ("evaluation.judge.allow_weak=true", "evaluation.during_training=true")
    with fake_server(FakeState(reply=random_judge)) as url:
        config = load_config(study_yaml, judged(url, tmp_path, *objective, *allowed))
        with pytest.raises(WeakJudgeError, match="during_training: the objective reads the judge"):
            run_sweep(config)
    assert runs_by_name(MlflowClient(config.mlflow.tracking_uri), "tiny") == {}
    assert optuna.load_study(study_name="tiny", storage=config.storage).trials == []


def test_a_weak_judge_for_reporting_is_flagged_on_the_parent(study_yaml: Path, tmp_path: Path) -> None:
    with fake_server(FakeState(reply=random_judge)) as url:
        config = load_config(study_yaml, judged(url, tmp_path))
        result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["harness.judge_weak"] == "true"
    assert parent.data.metrics["judge_check/judge/overall/accuracy"] < 0.8
    assert "judge_check.json" in {a.path for a in client.list_artifacts(result.parent_run_id)}
    trial = runs_by_name(client, "tiny")["trial-0"][0]
    assert trial.info.status == "FINISHED" and "consistency/heldout/judge" in trial.data.metrics
