"""harness promote / models / generate / chat / eval, against a real MLflow store in tmp_path."""

from __future__ import annotations

from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from tests.test_registry import (
    FAST_EVAL,
    aliases,
    make_baseline_run,
    make_trial_run,
    registry_config,
    trial_with_table,
)

runner = CliRunner()
HELDOUT_ROUGE_METRIC = "consistency/heldout/rouge_l"


def test_promote_list_and_use_the_champion(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    uri = config.mlflow.tracking_uri
    client = MlflowClient(uri)
    worse = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    better = make_trial_run(config, 1, {"eval_loss": 0.5}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})

    dry = runner.invoke(app, ["promote", str(study_yaml), "--run", worse, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would promote" in dry.output and client.search_registered_models() == []

    assert runner.invoke(app, ["promote", str(study_yaml), "--run", worse]).exit_code == 0
    # By study name: the config comes from the study's parent run in the tracking store.
    by_name = runner.invoke(app, ["promote", "tiny", "--run", better, "--tracking-uri", uri])
    assert by_name.exit_code == 0, by_name.output
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}
    # Only --run: the study is the run's experiment. The worse model does not win back the alias.
    lost = runner.invoke(app, ["promote", "--run", worse, "--tracking-uri", uri])
    assert lost.exit_code == 1 and "does not beat" in lost.output
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}

    listed = runner.invoke(app, ["models", "tiny", "--tracking-uri", uri], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    assert "champion" in listed.output and "previous" in listed.output and "eval_loss=0.5" in listed.output

    said = runner.invoke(
        app, ["generate", "models:/tiny@champion", "hi", "--max-new-tokens", "3", "--tracking-uri", uri]
    )
    assert said.exit_code == 0, said.output
    chat = runner.invoke(
        app,
        ["chat", "models:/tiny@champion", "--max-new-tokens", "3", "--tracking-uri", uri],
        input="hi\n/reset\nhello\nexit\n",
    )
    assert chat.exit_code == 0, chat.output
    assert chat.output.count("you>") == 4

    assert runner.invoke(app, ["promote"]).exit_code == 2
    missing = runner.invoke(app, ["models", "nope", "--tracking-uri", uri])
    assert missing.exit_code == 2


def test_eval_logs_any_model_as_a_run_of_the_study(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    trial = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})
    assert runner.invoke(app, ["promote", str(study_yaml), "--run", trial]).exit_code == 0

    for spec in ("base", trial, "models:/tiny@champion"):
        result = runner.invoke(app, ["eval", str(study_yaml), "--model", spec, *FAST_EVAL])
        assert result.exit_code == 0, result.output
    experiment = client.get_experiment_by_name("tiny").experiment_id
    runs = {
        r.data.tags["harness.eval_model"]: r for r in client.search_runs([experiment], "tags.`harness.role` = 'eval'")
    }
    assert set(runs) == {"base", trial, "models:/tiny@champion"}
    digests = {r.data.tags["harness.eval_digest"] for r in runs.values()}
    assert len(digests) == 1  # the same evaluation every time: comparable scores
    for run in runs.values():
        assert run.info.status == "FINISHED"
        assert 0.0 <= run.data.metrics["consistency/heldout/rouge_l"] <= 1.0
        assert "mlflow.parentRunId" not in run.data.tags  # the parent's children are trials
    registered = runs["models:/tiny@champion"].data.tags
    assert registered["harness.registered_model"] == "tiny" and registered["harness.model_version"] == "1"
    # The full-weights trial and its registered copy answer alike: same scores.
    same = [runs[trial].data.metrics, runs["models:/tiny@champion"].data.metrics]
    assert same[0]["consistency/heldout/rouge_l"] == same[1]["consistency/heldout/rouge_l"]

    bad = runner.invoke(app, ["eval", str(study_yaml), "--model", "nonsense", *FAST_EVAL])
    assert bad.exit_code == 2 and "expected base" in bad.output


def test_promote_refuses_a_failed_run_in_one_line(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    failed = make_trial_run(config, 0, {"eval_loss": 0.1}, model_dir=tiny_llama_dir, status="FAILED")
    result = runner.invoke(app, ["promote", str(study_yaml), "--run", failed], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert result.output.strip() == f"error: run {failed} is FAILED, not FINISHED: only a finished run can be promoted"
    assert client.search_registered_models() == [] and client.search_model_versions() == []


def test_promote_without_evidence_exits_1_and_writes_nothing(study_yaml: Path, tiny_llama_dir: Path) -> None:
    rouge_yaml = study_yaml.with_name("rouge.yaml")
    study = yaml.safe_load(study_yaml.read_text())
    rouge_yaml.write_text(
        yaml.safe_dump({**study, "objective": {"metric": HELDOUT_ROUGE_METRIC, "direction": "maximize"}})
    )
    config = registry_config(rouge_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    make_baseline_run(config, {}, rows=[0.5] * 10)
    below = trial_with_table(config, 0, [0.3] * 10, tiny_llama_dir)
    no_table = make_trial_run(config, 1, {HELDOUT_ROUGE_METRIC: 0.99}, model_dir=tiny_llama_dir)
    for args in (["--run", below], ["--run", below, "--dry-run"], ["--run", no_table, "--dry-run"]):
        result = runner.invoke(app, ["promote", str(rouge_yaml), *args], env={"COLUMNS": "400"})
        assert result.exit_code == 1, result.output
    assert "not promoted" in result.output and "no per-example evidence against the untuned baseline" in result.output
    assert f"run {no_table} has no per-example table eval/heldout.json" in result.output
    assert client.search_model_versions("name = 'tiny'") == []
