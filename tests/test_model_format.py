"""A registered model records the harness that wrote it, holds no pickled code, and a model this
harness cannot read is refused with a message naming both harness versions."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.lifecycle import model_format, registry, serving
from harness.lifecycle.model_format import IncompatibleModel
from harness.lifecycle.serving import ChatModel, ModelSpec, tracking_uri
from tests.test_registry import aliases, make_baseline_run, make_trial_run, registry_config

HARNESS = version("harness")


def champion_of(study_yaml: Path, model_dir: Path) -> tuple[Any, str]:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=model_dir)
    make_baseline_run(config, {"eval_loss": 2.0})
    assert registry.promote(config, run_id).promoted
    return config, run_id


def artifact_files(client: MlflowClient, model_version: Any) -> set[str]:
    logged = client.get_logged_model(model_version.source.removeprefix("models:/"))
    with tracking_uri(client.tracking_uri):
        local = Path(mlflow.artifacts.download_artifacts(logged.artifact_location))
    return {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}


def test_a_version_records_its_harness_and_holds_no_pickled_code(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config, _ = champion_of(study_yaml, tiny_llama_dir)
    client = MlflowClient(config.mlflow.tracking_uri)
    champion = client.get_model_version_by_alias("tiny", "champion")
    assert champion.tags["harness.harness_version"] == HARNESS and champion.tags["harness.model_format"] == "2"
    with tracking_uri(config.mlflow.tracking_uri):
        metadata = mlflow.models.get_model_info("models:/tiny@champion").metadata
    assert metadata == {"harness_version": HARNESS, "harness_model_format": 2}

    files = artifact_files(client, champion)
    assert {"MLmodel", "chat_model.py", "artifacts/harness_model.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]  # the code is logged by reference
    model = serving.load("models:/tiny@champion", config.mlflow.tracking_uri)
    assert len(model.predict(["hi"], params={"max_new_tokens": 2})) == 1


def test_a_model_of_another_format_is_refused_naming_both_versions(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as future:  # a later harness, with another layout, wrote this one
        future.setattr(model_format, "MODEL_FORMAT", 99)
        future.setattr(model_format, "harness_version", lambda: "9.9.9")
        config, _ = champion_of(study_yaml, tiny_llama_dir)
    uri = config.mlflow.tracking_uri
    expected = rf"written by harness 9\.9\.9 in model format 99; this harness \({HARNESS}\) loads model format 2 only"
    with pytest.raises(IncompatibleModel, match=rf"^models:/tiny@champion was {expected}"):
        serving.load("models:/tiny@champion", uri)
    with tracking_uri(uri), pytest.raises(IncompatibleModel, match=f"^this model was {expected}"):
        mlflow.pyfunc.load_model("models:/tiny/1")  # plain MLflow: the model's own code refuses it
    said = CliRunner().invoke(app, ["generate", "models:/tiny@champion", "hi", "--tracking-uri", uri])
    assert said.exit_code == 2 and said.output.startswith("error: models:/tiny@champion was written by harness 9.9.9")


def test_a_pickled_model_of_an_older_harness_is_refused_then_registered_again(
    study_yaml: Path, tiny_llama_dir: Path
) -> None:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    client = MlflowClient(config.mlflow.tracking_uri)
    spec = Path(config.training.work_dir) / "harness_model.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(ModelSpec(kind="full", base_model=str(tiny_llama_dir)).to_json())
    with tracking_uri(config.mlflow.tracking_uri), mlflow.start_run(run_id=run_id):
        # As harness did before models from code: the ChatModel object, cloudpickled, no record.
        mlflow.pyfunc.log_model(
            name="model",
            python_model=ChatModel(),
            artifacts={"spec": str(spec), "weights": str(tiny_llama_dir)},
            registered_model_name="tiny",
        )
    client.set_registered_model_alias("tiny", "champion", "1")
    with pytest.raises(IncompatibleModel, match=r"^models:/tiny@champion records no harness version: .* pickled"):
        serving.load("models:/tiny@champion", config.mlflow.tracking_uri)

    # The remedy the message gives: its trial run registered again, in this harness's format.
    again = registry.promote(config, run_id, force=True)
    assert again.promoted and not again.already and again.candidate_version == "2"
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}
    model = serving.load("models:/tiny@champion", config.mlflow.tracking_uri)
    assert len(model.predict(["hi"], params={"max_new_tokens": 2})) == 1


def test_check_is_pure_and_names_what_is_missing() -> None:
    model_format.check(model_format.stamp(), "m")
    with pytest.raises(IncompatibleModel, match=r"^m records no harness version"):
        model_format.check(None, "m")
    with pytest.raises(IncompatibleModel, match=r"^m records no harness version"):
        model_format.check({"harness_version": "0.1.0"}, "m")
    with pytest.raises(IncompatibleModel, match=r"^m was written by harness 0\.0\.1 in model format 1;"):
        model_format.check({"harness_version": "0.0.1", "harness_model_format": 1}, "m")
    assert model_format.readable_tags(model_format.version_tags())
    assert not model_format.readable_tags({}) and json.dumps(model_format.stamp())
