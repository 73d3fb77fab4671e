"""Pure parts of the OpenAI backend: data checks, preflight, payloads, result files, retries."""

from __future__ import annotations

import base64
import email.utils
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends.openai.jobs import job_payload, parse_result_file, suffix_for
from harness.backends.openai.preflight import example_tokens, preflight, token_counter
from harness.backends.openai.training_file import DataError, load_dataset, load_preferences
from harness.retry import retry_after_s
from harness.search_space import TrialParams
from harness.settings.openai import OpenAIConfig
from tests.backends.fake_api import payload
from tests.conftest import chat_record, write_jsonl


def dpo_record(question: str, good: str = "Use reversed().", bad: str = "No idea.") -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": good}],
        "non_preferred_output": [{"role": "assistant", "content": bad}],
    }


def test_preference_records_are_checked_with_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "dpo.jsonl",
        [
            dpo_record("fine"),
            {"input": {"messages": []}, "preferred_output": [], "extra": 1},
            dpo_record("same", good="x", bad="x"),
            "{not json",
            {**dpo_record("q"), "preferred_output": [{"role": "user", "content": "hi"}]},
        ],
    )
    with pytest.raises(DataError) as error:
        load_preferences(path)
    problems = error.value.problems
    assert any(p.startswith(f"{path}:2: unrecognised key 'extra'") for p in problems)
    assert f"{path}:2: missing 'non_preferred_output'" in problems
    assert f"{path}:2: input.messages: missing or empty list" in problems
    assert any(p.startswith(f"{path}:3: preferred_output and non_preferred_output") for p in problems)
    assert any(p.startswith(f"{path}:4: malformed JSON") for p in problems)
    assert any(p.startswith(f"{path}:5: preferred_output[0].role") for p in problems)
    assert not any(p.startswith(f"{path}:1:") for p in problems)


def test_dpo_dataset_gets_the_system_prompt_and_a_split(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dpo.jsonl", [dpo_record(f"q{i}") for i in range(10)])
    dataset = load_dataset(path, None, 0.2, 42, "Be brief.")
    assert dataset.kind == "dpo"
    assert (len(dataset.train), len(dataset.validation)) == (8, 2)
    assert dataset.train[0]["input"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert load_dataset(path, None, 0.2, 42, "Be brief.").digest == dataset.digest


def test_chat_and_preference_files_cannot_be_mixed(tmp_path: Path) -> None:
    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record("q", "a")] * 10)
    dpo = write_jsonl(tmp_path / "dpo.jsonl", [dpo_record("q")] * 2)
    with pytest.raises(DataError, match="not the same format"):
        load_dataset(chat, dpo, None, 0, None)


def test_dpo_payload_carries_beta_under_its_method() -> None:
    params = TrialParams(epochs=2, batch_size=4, lr_multiplier=0.5, dropout=0.0, method="dpo", beta=0.1)
    body = job_payload("gpt-4o-mini-2024-07-18", params, {"train": "file-1"}, "s-t0", seed=7)
    assert body["method"] == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": 2,
                "batch_size": 4,
                "learning_rate_multiplier": 0.5,
                "beta": 0.1,
            }
        },
    }
    assert body["seed"] == 7 and "validation_file" not in body


def test_preflight_counts_tokens_caps_examples_and_prices(tmp_path: Path) -> None:
    records = [chat_record("q" * 40, "a" * 40), chat_record("q" * 4000, "a" * 4000)]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    dataset = load_dataset(path, None, None, 0, None)
    settings = OpenAIConfig(token_counter="chars", max_example_tokens={"m": 500}, training_price_per_mtok={"m": 3.0})
    estimate = preflight(dataset, "m", settings)
    _, count = token_counter("chars", "m")
    small = example_tokens(dataset.train[0], count)
    assert estimate.tokens_min == small and estimate.tokens_max > 500
    assert estimate.n_over_cap == 1
    assert estimate.billed_tokens_per_epoch == small + 500
    assert estimate.trained_tokens(3) == 3 * (small + 500)
    assert estimate.cost_usd(3) == pytest.approx(3 * (small + 500) * 3.0 / 1e6)
    assert "1 example(s) truncated to 500 tokens" in estimate.render()


def test_auto_counter_falls_back_when_tiktoken_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.backends.openai import preflight as openai_preflight

    def offline(model: str) -> Any:
        raise ConnectionError("no internet to fetch the encoding")

    monkeypatch.setattr(openai_preflight, "_tiktoken_counter", offline)
    monkeypatch.setattr(openai_preflight, "_smollm2_counter", lambda: offline(""))
    name, count = token_counter("auto", "gpt-4o-mini-2024-07-18")
    assert name == "chars" and count("abcdefgh") == 2


@pytest.mark.parametrize("encode", [False, True])
def test_result_file_plain_or_base64(encode: bool) -> None:
    raw = payload("result_file.csv").encode()
    rows = parse_result_file(base64.b64encode(raw) if encode else raw)
    assert [step for step, _ in rows] == [1, 2, 3, 4]
    assert rows[1][1] == {"train_loss": 1.6, "train_accuracy": 0.6}  # blank valid cells skipped
    assert rows[3][1]["eval_loss"] == 1.5 and rows[3][1]["eval_accuracy"] == 0.62


def test_suffix_is_sanitised_and_keeps_the_trial() -> None:
    assert suffix_for("my study/v2", 3) == "my-study-v2-t3"
    long = suffix_for("x" * 100, 12345)
    assert len(long) == 64 and long.endswith("-t12345")


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_s({"retry-after": later}) or 0) <= 30
    assert retry_after_s({}) is None


def test_preference_file_with_a_byte_order_mark_is_still_preference_data(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dpo.jsonl", [dpo_record(f"q{i}") for i in range(3)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    dataset = load_dataset(path, None, None, 0, None)
    assert dataset.kind == "dpo" and len(dataset.train) == 3
