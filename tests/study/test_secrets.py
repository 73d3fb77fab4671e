"""The storage password never reaches MLflow: the parent run's params and config.json show ``***``."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.study.loop import describe_parent
from harness.tracking import Tracker

PASSWORD = "hunter2-Storage"


def test_the_parent_run_records_the_storage_url_with_its_password_masked(study_yaml: Path, tmp_path: Path) -> None:
    storage = f"postgresql://postgres:{PASSWORD}@db.example:5432/optuna"
    config = load_config(study_yaml, [f"storage={storage}"])
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name)
    parent_id = tracker.parent_run(config.study_name, {})
    study = optuna.create_study()  # in memory: only the parent run is under test

    describe_parent(config, study, tracker, parent_id, {"dataset_digest": "abc"}, None)

    client = MlflowClient(config.mlflow.tracking_uri)
    run = client.get_run(parent_id)
    assert run.data.params["storage"] == "postgresql://postgres:***@db.example:5432/optuna"
    assert not [key for key, value in run.data.params.items() if PASSWORD in value]
    config_json = Path(client.download_artifacts(parent_id, "config.json", str(tmp_path / "dl")))
    assert PASSWORD not in config_json.read_text()
    assert json.loads(config_json.read_text())["storage"] == "postgresql://postgres:***@db.example:5432/optuna"
