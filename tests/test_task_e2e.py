"""Checked answers end to end: a study on task accuracy logs every task and stability metric for
its trials and the baseline, tables say which check failed, and promotion reads the accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ConfigError, load_config
from harness.evaluation.tables import load_rows
from harness.lifecycle import registry
from harness.lifecycle.promotion import parse_metric
from harness.study import run_sweep
from tests.conftest import chat_record, write_jsonl

OBJECTIVE = "task/heldout/accuracy"
# The fixture model answers every prompt alike: "never says zzqq" passes, "names the port" fails.
FACTS = {
    "port": ("Which port does the gateway listen on?", "It listens on port 8443.", "contains", "8443"),
    "flag": ("Which flag turns on retries?", "Pass --retry.", "not-icontains", "zzqq"),
}
WORDINGS = ["{q}", "Quick question: {q}", "{q} Please answer briefly.", "I wonder: {q}", "Tell me: {q}"]


def fact_rows(wordings: list[str]) -> list[dict[str, Any]]:
    rows = []
    for group, (question, answer, check, value) in FACTS.items():
        for wording in wordings:
            record = chat_record(wording.format(q=question), answer)
            rows.append(record | {"group": group, "assert": [{"type": check, "value": value}]})
    return rows


@pytest.fixture
def task_yaml(study_yaml: Path, tmp_path: Path) -> Path:
    train = write_jsonl(tmp_path / "facts-train.jsonl", fact_rows(WORDINGS[:3]))
    heldout = write_jsonl(tmp_path / "facts-heldout.jsonl", fact_rows(WORDINGS[3:]))
    config = yaml.safe_load(study_yaml.read_text())
    config["data"] = {"train_file": str(train), "validation_file": str(heldout)}
    config["mlflow"]["registry_model_name"] = "tiny"
    study_yaml.write_text(yaml.safe_dump(config))
    return study_yaml


TASK = [
    "evaluation.scorers=[rouge_l,structure,detail]",
    "evaluation.max_new_tokens=8",
    "evaluation.stability.samples=2",
    "evaluation.stability.temperature=1.0",
    f"objective.metric={OBJECTIVE}",
    "objective.direction=maximize",
    "n_trials=1",
    "search_space.method=lora",
    "search_space.batch_size=4",
]
STABILITY = ["correct_agreement", "answer_agreement"]


@pytest.mark.slow
def test_a_study_on_task_accuracy_logs_task_and_stability_for_trials_and_baseline(task_yaml: Path) -> None:
    config = load_config(task_yaml, TASK)
    run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    for name in ("baseline", "trial-0"):
        metrics = runs[name].data.metrics
        for split in ("train", "heldout"):
            for key in ("task/{}/accuracy", "task/{}/group_accuracy", *(f"stability/{{}}/{s}" for s in STABILITY)):
                assert 0.0 <= metrics[key.format(split)] <= 1.0, (name, key)
        # The fixture model fails "port" and passes "flag" in every wording: half right, and agreeing.
        assert metrics["task/heldout/accuracy"] == 0.5 and metrics["task/heldout/group_accuracy"] == 0.5
        assert metrics["stability/heldout/correct_agreement"] == 1.0
        assert 0.0 <= metrics["stability/heldout/sampled_agreement"] <= 1.0
        assert 0.0 <= metrics["stability/heldout/sampled_answer_agreement"] <= 1.0
    trial = runs["trial-0"].data.metrics
    key = f"{OBJECTIVE}_vs_baseline"
    assert trial[f"{key}_ci_low"] <= trial[key] <= trial[f"{key}_ci_high"]
    assert trial[key] == pytest.approx(trial[OBJECTIVE] - runs["baseline"].data.metrics[OBJECTIVE])

    table = load_rows(client, runs["trial-0"].info.run_id, "heldout")
    assert {row["group"] for row in table} == {"port", "flag"}
    port = next(row for row in table if row["group"] == "port")
    assert port["correct"] == 0.0 and "expected the answer to contain '8443'" in port["failed_checks"]
    assert all(0.0 <= row["sampled_correct"] <= 1.0 for row in table)

    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert study.metric_names == [OBJECTIVE] and study.trials[0].value == trial[OBJECTIVE]
    decision = registry.promote(config, dry_run=True)  # the first champion against the baseline
    assert decision.interval is not None and OBJECTIVE in decision.reason


@pytest.mark.slow
def test_task_accuracy_is_measured_at_checkpoints(task_yaml: Path) -> None:
    during = [
        *TASK[:2],
        f"objective.metric={OBJECTIVE}",
        "objective.direction=maximize",
        "n_trials=1",
        "search_space.method=lora",
        "search_space.batch_size=4",  # 6 training rows: 2 steps an epoch
        "search_space.epochs=2",
        "evaluation.train_sample_size=0",
        "evaluation.baseline=false",
        "evaluation.during_training=true",
        "mlflow.register_best=false",
    ]
    config = load_config(task_yaml, during)
    run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("tiny")
    run = next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "trial-0")
    points = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, OBJECTIVE))
    assert [step for step, _ in points] == [2, 4, 4] and all(v == 0.5 for _, v in points)
    trial = optuna.load_study(study_name="tiny", storage=config.storage).trials[0]
    assert trial.intermediate_values == {1: 0.5, 2: 0.5}


def test_an_objective_on_accuracy_needs_checked_examples(study_yaml: Path) -> None:
    config = load_config(study_yaml, TASK)  # the fixture's rows carry no checks
    with pytest.raises(ConfigError, match="no heldout example has assert checks"):
        run_sweep(config)
    assert not (Path(config.mlflow.tracking_uri.removeprefix("sqlite:///")).exists())  # nothing recorded


def test_a_sampled_stability_objective_needs_evaluation_stability(study_yaml: Path) -> None:
    with pytest.raises(ConfigError, match="sampled_agreement"):
        load_config(
            study_yaml, ["objective.metric=stability/heldout/sampled_agreement", "objective.direction=maximize"]
        )
    load_config(study_yaml, ["objective.metric=stability/heldout/correct_agreement", "objective.direction=maximize"])


def test_promotion_reads_accuracy_from_the_correct_column() -> None:
    assert parse_metric(OBJECTIVE) == ("heldout", "correct")
    assert parse_metric("task/heldout/group_accuracy") is None  # no per-example value
    assert parse_metric("consistency/train/rouge_l") == ("train", "rouge_l")


def test_score_checks_answers_and_writes_correct_and_failed_checks(study_yaml: Path, tmp_path: Path) -> None:
    answers = write_jsonl(
        tmp_path / "answers.jsonl",
        [
            {"question": "Port?", "reference": "8443", "answer": "Port 8443.", "group": "port",
             "assert": [{"type": "contains", "value": "8443"}]},
            {"question": "Which port?", "reference": "8443", "answer": "Port 80.", "group": "port",
             "assert": [{"type": "contains", "value": "8443"}]},
            {"question": "Hi", "reference": "Hello", "answer": "Hello"},
        ],
    )  # fmt: skip
    out = tmp_path / "scored.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(study_yaml), str(answers), "--out", str(out), "--scorers", "rouge_l"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("correct") for r in rows] == [1.0, 0.0, None]
    assert "contain '8443'" in rows[1]["failed_checks"]
    assert "task/answers/accuracy 0.500" in result.output
    assert "stability/answers/correct_agreement 0.000" in result.output
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"question": "q", "reference": "r", "answer": "a", "assert": [{"type": "regex", "value": "("}]}],
    )
    refused = runner.invoke(app, ["score", str(study_yaml), str(bad)])
    assert refused.exit_code == 2 and f"{bad}:1: assert[0].value: regex '(' does not compile" in refused.output
