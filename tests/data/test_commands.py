"""harness data check / split through the real CLI: exit codes and files written."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from harness.cli import app
from tests.conftest import chat_record, write_jsonl
from tests.data.test_check import dpo_record

runner = CliRunner()


def test_check_accepts_chat_and_preference_files(tmp_path: Path) -> None:
    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record(f"q{i}", f"a{i}") for i in range(3)])
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [dpo_record(f"q{i}") for i in range(3)])
    prices = tmp_path / "prices.yaml"
    prices.write_text("model: m\nm: 3.0\n")
    result = runner.invoke(app, ["data", "check", str(chat), str(dpo), "--prices", str(prices)])
    assert result.exit_code == 0, result.output


def test_check_exits_2_naming_file_and_line_in_every_file(tmp_path: Path) -> None:
    chat = write_jsonl(
        tmp_path / "chat.jsonl", [chat_record("q", "a"), {"messages": [{"role": "robot", "content": "x"}]}]
    )
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [dpo_record("q"), dpo_record("q", good="same", bad="same")])
    result = runner.invoke(app, ["data", "check", str(chat), str(dpo)])
    assert result.exit_code == 2
    assert f"{chat}:2:" in result.output and f"{dpo}:2:" in result.output


def test_check_refuses_a_bad_price_table(tmp_path: Path) -> None:
    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record("q", "a")])
    prices = tmp_path / "prices.yaml"
    prices.write_text("m: 3.0\n")  # no `model` to price
    assert runner.invoke(app, ["data", "check", str(chat), "--prices", str(prices)]).exit_code == 2


def test_check_takes_its_settings_from_a_study_config(tmp_path: Path) -> None:
    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record("q", "a")])
    config = tmp_path / "study.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "study_name": "s",
                "base_model": "smollm2",
                "system_prompt": "Be terse.",
                "max_seq_length": 32,
                "data": {"train_file": str(chat)},
            }
        )
    )
    result = runner.invoke(app, ["data", "check", str(chat), "--config", str(config)])
    assert result.exit_code == 0, result.output
    # The table is the command's only result: the config's limit and tokenizer are the ones used.
    assert "examples over max_seq_length 32" in result.output and "tokens per example, smollm2" in result.output
    missing = runner.invoke(app, ["data", "check", str(chat), "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2


def test_split_writes_both_files_deterministically(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "all.jsonl", [chat_record(f"q{i}", f"a{i}") for i in range(20)])
    outputs = []
    for attempt in ("one", "two"):
        train, heldout = tmp_path / attempt / "train.jsonl", tmp_path / attempt / "heldout.jsonl"
        args = [
            "data",
            "split",
            str(source),
            "--heldout",
            "0.3",
            "--seed",
            "5",
            "--out-train",
            str(train),
            "--out-heldout",
            str(heldout),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs.append((train.read_bytes(), heldout.read_bytes()))
    assert outputs[0] == outputs[1]
    train_lines, heldout_lines = (o.splitlines() for o in outputs[0])
    assert (len(train_lines), len(heldout_lines)) == (14, 6)
    assert sorted(train_lines + heldout_lines) == sorted(source.read_bytes().splitlines())


def test_split_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "all.jsonl", [chat_record(f"q{i}", f"a{i}") for i in range(10)])
    before = source.read_bytes()
    args = ["data", "split", str(source), "--out-train", str(source), "--out-heldout", str(tmp_path / "h.jsonl")]
    assert runner.invoke(app, args).exit_code == 2
    assert source.read_bytes() == before and not (tmp_path / "h.jsonl").exists()


def test_split_refuses_bad_data(tmp_path: Path) -> None:
    source = tmp_path / "all.jsonl"
    source.write_text(json.dumps(chat_record("q", "a")) + "\n[]\n")
    args = [
        "data",
        "split",
        str(source),
        "--out-train",
        str(tmp_path / "t.jsonl"),
        "--out-heldout",
        str(tmp_path / "h.jsonl"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and f"{source}:2:" in result.output
    assert not (tmp_path / "t.jsonl").exists()


def test_check_with_a_remote_config_prices_it_with_the_backends_own_preflight(tmp_path: Path) -> None:
    from harness.backends.openai.preflight import preflight
    from harness.backends.openai.training_file import load_dataset
    from harness.config import load_config

    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record(f"q{i}", f"a{i}") for i in range(3)])
    study = Path(__file__).resolve().parents[2] / "experiments" / "openai_seed_rounds.yaml"
    result = runner.invoke(app, ["data", "check", str(chat), "--config", str(study)])
    assert result.exit_code == 0, result.output
    config = load_config(study, [])
    expected = preflight(load_dataset(chat, None, None, 0, config.system_prompt), config.base_model, config.openai)
    assert expected.cost_usd(1) is not None
    assert f"estimated cost per epoch: ${expected.cost_usd(1):.4f}" in result.output
