"""End to end: synthesize through a fake endpoint, check, split, and sweep the tiny Llama over
augmentation on the result; everything read back from files, Optuna and MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.data.chat import digest, load_jsonl
from tests.evaluation.fake_server import FakeState, Reply, fake_server
from tests.synthesis.conftest import GOOD, SYSTEM, spec_dict, topic_of, write_spec

pytestmark = pytest.mark.slow
runner = CliRunner()
QUESTIONS = {
    "list slicing": "How do I reverse a list with slicing in Python?",
    "json files": "What is the simplest way to load a JSON file into a dictionary?",
    "git stash": "How do I save uncommitted changes in Git before switching branches?",
    "sql grouping": "How do I count rows per category in SQL?",
    "docker logs": "How can I see the logs of a container running in the background?",
    "pytest": "How do I run one pytest test function with many inputs?",
    "dataclasses": "How do I write a small data class without writing __init__ by hand?",
    "file permissions": "What does chmod 755 mean for a script on Linux?",
}


def reply(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    if messages[0]["role"] == "user":
        return Reply(QUESTIONS[topic_of(messages[0]["content"])])
    return Reply(GOOD.format(opening=f"Here is the short answer to: {messages[-1]['content'].lower()}"))


@pytest.fixture
def endpoint() -> Iterator[str]:
    with fake_server(FakeState(reply=reply)) as url:
        yield url


def cli(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_synth_check_split_sweep(
    tmp_path: Path, endpoint: str, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # the augmented set's cache
    spec = spec_dict(tmp_path, endpoint)
    spec["personas"][0]["topics"] = list(QUESTIONS)
    synth = tmp_path / "synth.jsonl"
    cli("data", "synth", str(write_spec(tmp_path / "spec.yaml", spec)), "--out", str(synth))
    cli("data", "check", str(synth))
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    cli(
        "data",
        "split",
        str(synth),
        "--heldout",
        "0.25",
        "--seed",
        "1",
        "--out-train",
        str(train),
        "--out-heldout",
        str(heldout),
    )
    assert len(load_jsonl(train)) == 6 and len(load_jsonl(heldout)) == 2

    tracking = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    study = {
        "study_name": "synth-e2e",
        "base_model": str(tiny_llama_dir),
        "system_prompt": SYSTEM,
        "max_seq_length": 256,
        "data": {"train_file": str(train), "validation_file": str(heldout), "augment": {"factor": 1}},
        "search_space": {
            "augmentation": ["none", "eda"],
            "epochs": 1,
            "batch_size": 2,
            "lr_multiplier": 1.0,
            "dropout": 0.0,
            "method": "lora",
        },
        "training": {"eval_steps": 2, "work_dir": str(tmp_path / "work"), "precision": "fp32"},
        "sampler": {"type": "grid"},
        "pruner": {"type": "none"},
        "n_trials": 2,
        "evaluation": {"enabled": False},
        "mlflow": {"tracking_uri": tracking, "register_best": False},
        "storage": f"sqlite:///{tmp_path}/mlruns/optuna.db",
    }
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(study))
    cli("sweep", str(config))

    trials = optuna.load_study(study_name="synth-e2e", storage=study["storage"]).trials
    assert sorted(t.params["augmentation"] for t in trials) == ["eda", "none"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    client = MlflowClient(tracking)
    synthesis = client.search_runs([client.get_experiment_by_name("synthesis").experiment_id])[0]
    assert synthesis.data.tags["harness.dataset_digest"] == digest(load_jsonl(synth))
    params = [client.get_run(t.user_attrs["mlflow_run_id"]).data.params for t in trials]
    assert {p["augmentation"] for p in params} == {"none", "eda"}
