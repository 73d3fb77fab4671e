"""harness data pairs: reference preferred, the model's own greedy answer not; valid DPO JSONL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.data.chat import Example
from harness.data.check import read_checked
from harness.data.preference import preference_problems
from harness.lifecycle.pairs import build_records, usable
from tests.conftest import SYSTEM

runner = CliRunner()


@pytest.fixture
def talking_study(tmp_path: Path, study_yaml: Path, tiny_llama_dir: Path) -> Path:
    """The tiny study on a copy of the tiny Llama that never says only blanks (the random one answers
    newlines, which strip to nothing): every token that decodes to whitespace gets a zero embedding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
        AutoTokenizer.from_pretrained(tiny_llama_dir),
    )
    blank = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    with torch.no_grad():
        model.get_input_embeddings().weight[blank] = 0  # tied: their logits become 0, below the rest
    model.save_pretrained(tmp_path / "talking")
    tokenizer.save_pretrained(tmp_path / "talking")
    config = yaml.safe_load(study_yaml.read_text()) | {"base_model": str(tmp_path / "talking")}
    study_yaml.write_text(yaml.safe_dump(config))
    return study_yaml


def example(question: str, answer: str, line: int = 1) -> Example:
    user = {"role": "user", "content": question}
    return Example(({"role": "system", "content": SYSTEM}, user, {"role": "assistant", "content": answer}), f"f:{line}")


def test_pairs_prefer_the_reference_and_skip_answers_that_teach_nothing() -> None:
    examples = [example("q1", "Use reversed()."), example("q2", "Slice it."), example("q3", "Sort it.")]
    records, same = build_records(examples, ["I don't know.", " Slice it.\n", ""])
    assert same == 2 and len(records) == 1
    (record,) = records
    assert preference_problems(record) == []
    assert record["input"]["messages"][-1] == {"role": "user", "content": "q1"}
    assert record["preferred_output"][0]["content"] == "Use reversed()."
    assert record["non_preferred_output"][0]["content"] == "I don't know."
    lone = Example(({"role": "assistant", "content": "Hello."},), "f:9")
    assert not usable(lone) and usable(examples[0])


def test_data_pairs_writes_dpo_jsonl_that_passes_data_check(tmp_path: Path, talking_study: Path) -> None:
    out = tmp_path / "out" / "pairs.jsonl"
    result = runner.invoke(app, ["data", "pairs", str(talking_study), "--out", str(out), "--limit", "5"])
    assert result.exit_code == 0, result.output
    checked = read_checked(out)  # the validator `harness data check` runs
    assert checked.format == "dpo" and 1 <= len(checked.records) <= 5
    first = checked.records[0][1]
    assert first["preferred_output"][0]["content"] == "Use reversed() or slicing [::-1] (0)."
    assert first["input"]["messages"][0] == {"role": "system", "content": SYSTEM}  # as the source file has it
    assert f"pairs -> {out}" in result.output


def test_data_pairs_refuses_bad_model_specs(tmp_path: Path, study_yaml: Path) -> None:
    bad = runner.invoke(app, ["data", "pairs", str(study_yaml), "--out", str(tmp_path / "p.jsonl"), "--model", "gpt-4"])
    assert bad.exit_code == 2 and "expected base, run:RUN_ID" in bad.output
    missing = ["--model", "models:/nope@champion"]
    result = runner.invoke(app, ["data", "pairs", str(study_yaml), "--out", str(tmp_path / "p.jsonl"), *missing])
    assert result.exit_code == 2 and "no registered model named 'nope'" in result.output
