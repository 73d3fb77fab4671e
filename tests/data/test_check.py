"""harness.data.check: the sweep's validators per format, and what training would see of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.data.chat import DataError, Example, load_jsonl, with_system_prompt
from harness.data.check import read_all, read_checked, summarise
from harness.data.prices import Price
from harness.data.tokenize import tokenize_all, tokenize_example
from tests.conftest import chat_record, write_jsonl


def dpo_record(question: str, good: str = "Use reversed().", bad: str = "No idea.") -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": good}],
        "non_preferred_output": [{"role": "assistant", "content": bad}],
    }


MULTI_TURN = {
    "messages": [
        {"role": "user", "content": "How do I read a file?"},
        {"role": "assistant", "content": "Use open().", "weight": 0},
        {"role": "user", "content": "And line by line?"},
        {"role": "assistant", "content": "Iterate over the file object."},
    ]
}


@pytest.fixture
def sft_file(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "sft.jsonl",
        [
            chat_record("How do I reverse a list?", "Use reversed()."),
            MULTI_TURN,
            chat_record("How do I reverse a list?", "Slice with [::-1]."),  # the same prompt as line 1
            "",  # blank lines are skipped and keep the numbering
            chat_record("Explain decorators.", "word " * 300),
        ],
    )


def test_sft_summary_matches_what_training_tokenizes(sft_file: Path, smol_tokenizer) -> None:
    checked = read_checked(sft_file)
    summary = summarise(checked, smol_tokenizer, "smollm2", max_seq_length=128, system_prompt="Be terse.")
    trained = tokenize_all(smol_tokenizer, with_system_prompt(load_jsonl(sft_file), "Be terse."), max_length=10_000)
    lengths = [len(e.input_ids) for e in trained.examples]
    assert (summary.format, summary.examples, summary.tokenizer) == ("chat", 4, "smollm2")
    assert summary.turns_mean == pytest.approx((1 + 2 + 1 + 1) / 4)
    assert (summary.tokens_min, summary.tokens_max) == (min(lengths), max(lengths))
    assert summary.tokens_mean == pytest.approx(sum(lengths) / 4)
    assert summary.tokens_per_epoch == sum(lengths)
    assert summary.weight_zero_turns == 1
    assert summary.over_length == (f"{sft_file}:5",)
    assert summary.duplicate_prompts == ((f"{sft_file}:1", f"{sft_file}:3"),)
    assert summary.n_duplicate_prompts == 1
    assert summary.price is None and summary.cost_per_epoch_usd is None


def test_system_prompt_is_counted_only_where_missing(sft_file: Path, smol_tokenizer) -> None:
    checked = read_checked(sft_file)
    plain = summarise(checked, smol_tokenizer, "smollm2", 128)
    prompted = summarise(checked, smol_tokenizer, "smollm2", 128, system_prompt="Be terse.")
    # Only the multi-turn example lacks a system message: it alone grows.
    grown = prompted.tokens_per_epoch - plain.tokens_per_epoch
    example = Example(tuple(MULTI_TURN["messages"]), "x")
    with_prompt = with_system_prompt([example], "Be terse.")[0]
    assert grown == len(tokenize_example(smol_tokenizer, with_prompt).input_ids) - len(
        tokenize_example(smol_tokenizer, example).input_ids
    )


def test_over_length_counts_every_example_above_the_limit(sft_file: Path, smol_tokenizer) -> None:
    checked = read_checked(sft_file)
    everything = summarise(checked, smol_tokenizer, "smollm2", max_seq_length=1)
    assert len(everything.over_length) == 4
    nothing = summarise(checked, smol_tokenizer, "smollm2", max_seq_length=everything.tokens_max)
    assert nothing.over_length == ()


def test_dpo_file_counts_the_longer_side_and_trains_both(tmp_path: Path, smol_tokenizer) -> None:
    path = write_jsonl(
        tmp_path / "dpo.jsonl",
        [dpo_record("Reverse a list?"), dpo_record("Reverse a list?", bad="blah " * 100), dpo_record("Sort a dict?")],
    )
    checked = read_checked(path)
    assert checked.format == "dpo"
    summary = summarise(checked, smol_tokenizer, "smollm2", max_seq_length=64)

    def tokens(record: dict[str, Any], side: str) -> int:
        messages = (*record["input"]["messages"], *record[side])
        return len(tokenize_example(smol_tokenizer, Example(messages, "x")).input_ids)

    record = dpo_record("Reverse a list?", bad="blah " * 100)
    assert summary.tokens_max == tokens(record, "non_preferred_output")
    both = [
        tokens(dpo_record(q, **kw), s)
        for q, kw in [("Reverse a list?", {}), ("Reverse a list?", {"bad": "blah " * 100}), ("Sort a dict?", {})]
        for s in ("preferred_output", "non_preferred_output")
    ]
    assert summary.tokens_per_epoch == sum(both)
    assert (summary.examples, summary.turns_mean, summary.weight_zero_turns) == (3, 1.0, 0)
    assert summary.over_length == (f"{path}:2",)
    assert summary.duplicate_prompts == ((f"{path}:1", f"{path}:2"),)


def test_problems_of_every_file_come_back_with_file_and_line(tmp_path: Path) -> None:
    chat = write_jsonl(
        tmp_path / "chat.jsonl", [chat_record("q", "a"), {"messages": [{"role": "user", "content": "q"}]}]
    )
    dpo = write_jsonl(tmp_path / "dpo.jsonl", ["{broken", dpo_record("q"), dpo_record("q", good="x", bad="x")])
    good = write_jsonl(tmp_path / "good.jsonl", [chat_record("q", "a")])
    checked, problems = read_all([chat, dpo, good])
    assert [c.path for c in checked] == [good]
    assert [p.split(": ", 1)[0] for p in problems] == [f"{chat}:2", f"{dpo}:1", f"{dpo}:3"]
    assert "preferred_output and non_preferred_output are identical" in problems[2]


def test_a_preference_file_is_checked_as_one(tmp_path: Path) -> None:
    # The first line names the format; a chat record later is a problem of a preference file.
    path = write_jsonl(tmp_path / "mixed.jsonl", [dpo_record("q"), chat_record("q", "a")])
    with pytest.raises(DataError) as error:
        read_checked(path)
    assert error.value.problems[0].startswith(f"{path}:2: unrecognised key 'messages'")


def test_cost_per_epoch_is_trained_tokens_times_price(sft_file: Path, smol_tokenizer) -> None:
    summary = summarise(read_checked(sft_file), smol_tokenizer, "smollm2", 128, price=Price("m", 3.0))
    assert summary.cost_per_epoch_usd == pytest.approx(summary.tokens_per_epoch * 3.0 / 1_000_000)
