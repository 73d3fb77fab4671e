"""harness data synth against a fake OpenAI-compatible endpoint: the file, the filters, resuming,
and the MLflow run, all read back (never stdout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.data.chat import load_jsonl, read_records, record_problems
from tests.evaluation.fake_server import FakeState
from tests.synthesis.conftest import ACCEPTED_TOPICS, EXPECTED, SYSTEM, TOPICS, spec_dict, write_spec

runner = CliRunner()


def synth(spec: Path, out: Path) -> None:
    result = runner.invoke(app, ["data", "synth", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output


def the_run(tmp_path: Path, index: int = 0):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("synthesis")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return client, runs[index]


def test_synth_writes_valid_chat_jsonl_and_logs_counts_spec_and_dataset(
    tmp_path: Path, fake_endpoint: tuple[FakeState, str]
) -> None:
    state, url = fake_endpoint
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(tmp_path, url))
    out = tmp_path / "synth.jsonl"
    synth(spec, out)

    assert len(read_records(out, record_problems)) == 2  # the sweep's own validator: raises on any problem
    examples = load_jsonl(out)
    questions = [e.messages[1]["content"] for e in examples]
    assert questions == [TOPICS[t][0].removeprefix("Question: ") for t in ACCEPTED_TOPICS]
    # The written system prompt is the plain one: style instructions were only for generating.
    assert all(e.messages[0] == {"role": "system", "content": SYSTEM} for e in examples)
    answer_requests = [r for r in state.requests if r["messages"][0]["role"] == "system"]
    assert all("**Tip:**" in r["messages"][0]["content"] for r in answer_requests)
    assert len(state.requests) == len(TOPICS) * 2 - 1  # no answer asked for the question-less reply

    client, run = the_run(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["harness.role"] == "synthesis"
    metrics = run.data.metrics
    assert metrics["synth/accepted"] == 2 and metrics["synth/items"] == len(TOPICS)
    assert {name: metrics[f"synth/rejected/{name}"] for name in EXPECTED} == EXPECTED
    assert run.data.params["endpoint.base_url"] == url and run.data.params["filters.max_words"] == "120"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "synth_spec.json" in artifacts and "data" in artifacts
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "synth.jsonl" and dataset_input.dataset.digest
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == 2
    assert [t.value for t in dataset_input.tags] == ["training"]


def test_a_rerun_requests_only_what_the_state_file_lacks(tmp_path: Path, fake_endpoint: tuple[FakeState, str]) -> None:
    state, url = fake_endpoint
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(tmp_path, url))
    out = tmp_path / "synth.jsonl"
    synth(spec, out)
    first, asked = out.read_bytes(), len(state.requests)

    synth(spec, out)  # everything is in the state file: no request at all
    assert len(state.requests) == asked and out.read_bytes() == first

    # Drop two finished items from the state file (as if killed before they were written): only
    # those two are asked for again, and the output is the same.
    lines = (tmp_path / "synth.jsonl.state.jsonl").read_text().splitlines()
    (tmp_path / "synth.jsonl.state.jsonl").write_text("\n".join(lines[:-2]) + "\n" + '{"id": "torn')
    synth(spec, out)
    assert 2 <= len(state.requests) - asked <= 4 and out.read_bytes() == first
    _, rerun = the_run(tmp_path, 2)
    assert rerun.data.metrics["synth/reused"] == len(TOPICS) - 2 and rerun.data.metrics["synth/generated"] == 2


def test_spec_errors_name_file_and_field_and_exit_2_before_any_request(
    tmp_path: Path, fake_endpoint: tuple[FakeState, str]
) -> None:
    state, url = fake_endpoint
    bad = spec_dict(tmp_path, url, questions_per_topic=0, question_prompt="about {subject}")
    bad["personas"][0]["topics"] = []
    spec = write_spec(tmp_path / "bad.yaml", bad)
    result = runner.invoke(app, ["data", "synth", str(spec), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for where in (str(spec), "personas.0.topics", "questions_per_topic", "question_prompt"):
        assert where in text
    assert state.requests == [] and not (tmp_path / "x.jsonl").exists()


def test_a_key_named_in_the_spec_never_reaches_mlflow(
    tmp_path: Path, fake_endpoint: tuple[FakeState, str], monkeypatch
) -> None:
    state, url = fake_endpoint
    monkeypatch.setenv("SYNTH_KEY", "sk-secret-value")
    spec_data = spec_dict(tmp_path, url)
    spec_data["endpoint"]["api_key_env"] = "SYNTH_KEY"
    spec_data["personas"][0]["topics"] = ["sorting", "venvs"]
    synth(write_spec(tmp_path / "spec.yaml", spec_data), tmp_path / "synth.jsonl")
    assert {auth for _, auth in state.seen} == {"Bearer sk-secret-value"}
    client, run = the_run(tmp_path)
    logged = json.dumps([run.data.params, run.data.tags])
    local = client.download_artifacts(run.info.run_id, "synth_spec.json", str(tmp_path))
    assert "sk-secret-value" not in logged + Path(local).read_text()


def test_a_missing_key_exits_2_before_any_request(
    tmp_path: Path, fake_endpoint: tuple[FakeState, str], monkeypatch
) -> None:
    state, url = fake_endpoint
    monkeypatch.delenv("SYNTH_KEY", raising=False)
    spec_data = spec_dict(tmp_path, url)
    spec_data["endpoint"]["api_key_env"] = "SYNTH_KEY"
    result = runner.invoke(
        app, ["data", "synth", str(write_spec(tmp_path / "s.yaml", spec_data)), "--out", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 2 and "SYNTH_KEY" in result.output
    assert state.requests == [] and not (tmp_path / "o.jsonl").exists()


def test_the_packaged_model_without_llama_cpp_names_the_extra_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as after `pip install -e .`: no llama extra
    spec_data = spec_dict(tmp_path, "unused", endpoint={"kind": "llama_cpp", "model": "smollm2"})
    out = tmp_path / "o.jsonl"
    result = runner.invoke(app, ["data", "synth", str(write_spec(tmp_path / "s.yaml", spec_data)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    (line,) = [text for text in result.output.splitlines() if text.strip()]
    assert "llama-cpp-python is not installed: pip install -e '.[llama]'" in line
    assert not out.exists() and not (tmp_path / "mlruns").exists()
