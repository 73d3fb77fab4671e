"""The study's tables on the parent run are written whole from the study: never appended to."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from harness.config import ObjectiveConfig
from harness.evaluation.tables import parse_table
from harness.study.report import summarise
from harness.tracking import Tracker


def read_table(uri: str, run_id: str, artifact: str, tmp_path: Path) -> list[dict]:
    local = MlflowClient(uri).download_artifacts(run_id, artifact, str(tmp_path / "read" / artifact))
    return parse_table(json.loads(Path(local).read_text(encoding="utf-8")))


def finished_study(directions: list[str], n_trials: int) -> optuna.Study:
    study = optuna.create_study(directions=directions)
    study.optimize(
        lambda t: tuple(t.suggest_float("lr", 0.1, 1.0) * (i + 1) for i in range(len(directions))),
        n_trials=n_trials,
    )
    return study


def test_summaries_by_several_workers_and_resumes_keep_one_row_per_trial(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = finished_study(["minimize"], 3)
    objective = ObjectiveConfig(metric="loss")
    parent = Tracker(uri, "s").parent_run("s", {})
    # Two workers report at the end of their trials, then the study is resumed and reports again.
    summarise(study, Tracker(uri, "s"), parent, objective)
    summarise(study, Tracker(uri, "s"), parent, objective)
    study.optimize(lambda t: t.suggest_float("lr", 0.1, 1.0), n_trials=1)
    summarise(study, Tracker(uri, "s"), parent, objective)

    rows = read_table(uri, parent, "trials.json", tmp_path)
    assert [r["number"] for r in rows] == [t.number for t in study.trials] == [0, 1, 2, 3]


def test_the_pareto_front_is_rewritten_not_appended(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = finished_study(["minimize", "maximize"], 3)
    objective = ObjectiveConfig.model_validate(
        {"metrics": [{"metric": "a", "direction": "minimize"}, {"metric": "b", "direction": "maximize"}]}
    )
    tracker = Tracker(uri, "s")
    parent = tracker.parent_run("s", {})
    summarise(study, tracker, parent, objective)
    summarise(study, tracker, parent, objective)

    front = read_table(uri, parent, "pareto_front.json", tmp_path)
    assert sorted(r["number"] for r in front) == sorted(t.number for t in study.best_trials)
    assert len(read_table(uri, parent, "trials.json", tmp_path)) == 3


def test_trials_json_names_the_baseline_intervals_as_mlflow_does(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("harness.vs_baseline", {"consistency/heldout/rouge_l": [0.1, 0.02, 0.2]})
    study.tell(trial, 1.0)
    tracker = Tracker(uri, "s")
    parent = tracker.parent_run("s", {})
    summarise(study, tracker, parent, ObjectiveConfig(metric="loss"))

    [row] = read_table(uri, parent, "trials.json", tmp_path)
    assert row["consistency/heldout/rouge_l_vs_baseline"] == 0.1
    assert row["consistency/heldout/rouge_l_vs_baseline_ci_low"] == 0.02
    assert row["consistency/heldout/rouge_l_vs_baseline_ci_high"] == 0.2
