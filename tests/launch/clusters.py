"""A study config whose stores a cluster reaches (hosts by address: no name lookups), with data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.config import StudyConfig, parse_study
from tests.conftest import chat_record, write_jsonl
from tests.study.sweeps import sweep_settings

STORAGE = "postgresql://postgres@10.0.0.5:5432/studies"
TRACKING = "http://10.0.0.6:5000"


def cluster_settings(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    train = write_jsonl(tmp_path / "train.jsonl", [chat_record(f"q{i}?", f"a{i}.") for i in range(4)])
    heldout = write_jsonl(tmp_path / "heldout.jsonl", [chat_record("h?", "h.")])
    data = {"train_file": str(train), "validation_file": str(heldout)}
    base = sweep_settings(tmp_path, STORAGE, study_name="Tiny_Study", data=data, n_trials=4)
    return {**base, "mlflow": {"tracking_uri": TRACKING}, **settings}


def cluster_config(tmp_path: Path, **settings: Any) -> StudyConfig:
    return parse_study(cluster_settings(tmp_path, **settings))


def config_file(tmp_path: Path, **settings: Any) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cluster_settings(tmp_path, **settings)))
    return path
