"""A study's config as its sweep logged it, read back from the study's MLflow parent run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness.config import StudyConfig, parse_study
from harness.lifecycle.registry import RegistryError, client_for
from harness.tracking import PARENT_ROLE, TAG_ROLE


def study_config(uri: str, *, study: str | None = None, run_id: str | None = None) -> StudyConfig:
    """A study's config as its sweep logged it (``config.json`` on the parent run), found by the
    study name or by any run of the study; its tracking URI becomes ``uri``."""
    client = client_for(uri)
    if run_id is not None:
        experiment_id = client.get_run(run_id).info.experiment_id
    else:
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            raise RegistryError(f"no MLflow experiment named {study!r} in {uri}")
        experiment_id = experiment.experiment_id
    parents = client.search_runs([experiment_id], f"tags.`{TAG_ROLE}` = '{PARENT_ROLE}'", max_results=1)
    if not parents:
        raise RegistryError(f"experiment {experiment_id} in {uri} has no study parent run")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(parents[0].info.run_id, "config.json", tmp)
        config = parse_study(json.loads(Path(path).read_text()))
    return config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": uri})})
