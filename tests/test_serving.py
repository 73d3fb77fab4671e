"""The pyfunc model: load by alias, answer strings and chats, in this process and a fresh one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from harness.lifecycle import registry
from harness.lifecycle.serving import ModelSpec, _rows, as_messages, tracking_uri
from tests.conftest import SYSTEM
from tests.evaluation.fake_server import FakeState, Reply, fake_server
from tests.test_registry import make_baseline_run, make_trial_run, registry_config

FT_MODEL = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
API_KEY = "sk-test-not-a-real-key-0123"


def test_prompts_become_chat_messages_with_the_study_system_prompt() -> None:
    assert as_messages("hi", "be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    chat = [{"role": "system", "content": "own"}, {"role": "user", "content": "hi"}]
    assert as_messages(chat, "be brief") == chat  # a conversation's own system prompt wins
    assert as_messages([{"role": "user", "content": "hi"}], None) == [{"role": "user", "content": "hi"}]
    with pytest.raises(TypeError):
        as_messages(3)
    # What pyfunc may hand over: lists as they are, or DataFrames from a REST request.
    assert _rows("hi") == ["hi"]
    assert _rows(pd.DataFrame({"prompt": ["a", "b"]})) == ["a", "b"]
    padded = pd.DataFrame([[chat[0], chat[1]], [chat[1], None]])
    assert _rows(padded) == [chat, [chat[1]]]


def test_spec_round_trips_through_json() -> None:
    spec = ModelSpec(kind="remote", base_model="gpt-4o-mini", backend="openai", remote_model=FT_MODEL)
    assert ModelSpec.from_json(spec.to_json()) == spec


def _champion(study_yaml: Path, tiny_llama_dir: Path) -> tuple[Any, str]:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})
    assert registry.promote(config, run_id).promoted
    return config, run_id


@pytest.mark.slow
def test_full_model_by_alias_answers_here_and_in_a_fresh_process(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config, _ = _champion(study_yaml, tiny_llama_dir)
    with tracking_uri(config.mlflow.tracking_uri):
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
    params = {"max_new_tokens": 4}
    question = "What does git stash do?"
    answers = model.predict([question, [{"role": "user", "content": question}]], params=params)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert answers[0] == answers[1]  # greedy, and the study's system prompt is added to both
    explicit = model.predict(
        [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]], params=params
    )
    assert explicit == answers[:1]
    assert model.metadata.signature.params.to_dict()[0]["name"] == "max_new_tokens"

    # A fresh interpreter: only harness importable and the store's URI in the environment.
    script = (
        "import json, mlflow.pyfunc, sys\n"
        "model = mlflow.pyfunc.load_model('models:/tiny@champion')\n"
        f"print(json.dumps(model.predict([{question!r}], params={{'max_new_tokens': 4}})))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": config.mlflow.tracking_uri, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == answers[:1]


def echo(body: dict[str, Any]) -> Reply:
    return Reply(content=f"echo: {body['messages'][-1]['content']}", logprobs=False)


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeState]:
    """A real local chat-completions endpoint (tests/evaluation/fake_server.py) that echoes."""
    state = FakeState(reply=echo)
    with fake_server(state) as base_url:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        yield state


def test_remote_version_answers_through_chat_completions(study_yaml: Path, fake_openai: FakeState) -> None:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 0.7}, remote_model=FT_MODEL, backend="openai")
    make_baseline_run(config, {"eval_loss": 2.0})
    assert registry.promote(config, run_id).promoted
    client = MlflowClient(config.mlflow.tracking_uri)
    version = client.get_model_version_by_alias("tiny", "champion")
    assert version.tags["harness.model_kind"] == "remote" and version.tags["harness.backend"] == "openai"

    with tracking_uri(config.mlflow.tracking_uri):
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
        location = client.get_logged_model(version.source.removeprefix("models:/")).artifact_location
        stored = Path(mlflow.artifacts.download_artifacts(f"{location}/artifacts/harness_model.json"))
    spec = json.loads(stored.read_text())
    assert spec["remote_model"] == FT_MODEL and spec["kind"] == "remote"
    assert API_KEY not in stored.read_text()  # keys come from the environment only

    answers = model.predict(["hello?", [{"role": "user", "content": "again?"}]], params={"max_new_tokens": 7})
    assert answers == ["echo: hello?", "echo: again?"]
    first = fake_openai.requests[0]
    assert fake_openai.seen[0] == ("/v1/chat/completions", f"Bearer {API_KEY}")
    assert first["model"] == FT_MODEL and first["temperature"] == 0 and first["max_tokens"] == 7
    assert first["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello?"}]
