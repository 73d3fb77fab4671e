"""harness.data.split: seeded, grouped by first user message, lines copied byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.data.chat import DataError
from harness.data.split import SplitError, plan_split, split_file, write_split
from tests.conftest import SYSTEM


def conversation(*turns: str) -> dict:
    """user, assistant, user, assistant, ... after the system prompt."""
    roles = ["user", "assistant"] * len(turns)
    return {
        "messages": [{"role": "system", "content": SYSTEM}]
        + [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]
    }


def dataset(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """30 groups: plain questions, conversations with their prefixes, duplicates; mixed line endings."""
    records = []
    for i in range(20):
        records.append(conversation(f"Question {i}?", f"Answer {i}."))
    for i in range(6):
        records.append(conversation(f"Thread {i}?", "First.", "More?", f"Second {i}."))
        records.append(conversation(f"Thread {i}?", "First."))  # its prefix
    for i in range(4):
        records.append(conversation(f"Asked twice {i}?", "Once."))
        records.append(conversation(f"Asked twice {i}?", "Twice."))
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in records]
    lines[3] = json.dumps(conversation("Question 3?", "Odd\u2028separators\u0085here."), ensure_ascii=False).encode()
    lines[5] += b"\r"  # a CRLF line stays CRLF
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path, lines


def first_users(path: Path) -> set[str]:
    return {json.loads(line)["messages"][1]["content"] for line in path.read_bytes().split(b"\n") if line.strip()}


def test_split_is_grouped_near_the_ratio_and_byte_identical(tmp_path: Path) -> None:
    path, lines = dataset(tmp_path)
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    planned = split_file(path, 0.3, seed=7)
    write_split(path, planned, train, heldout)
    assert planned.examples == len(lines) == 40 and planned.groups == 30
    assert abs(len(planned.heldout) - 0.3 * 40) <= 1  # the largest group has 2 examples
    assert first_users(train).isdisjoint(first_users(heldout))
    written = train.read_bytes().split(b"\n")[:-1] + heldout.read_bytes().split(b"\n")[:-1]
    assert sorted(written) == sorted(lines)
    assert train.read_bytes().split(b"\n")[:-1] == [lines[n - 1] for n in planned.train]  # input order


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path) -> None:
    path, _ = dataset(tmp_path)
    assert split_file(path, 0.3, seed=1) == split_file(path, 0.3, seed=1)
    assert split_file(path, 0.3, seed=1).heldout != split_file(path, 0.3, seed=2).heldout


def test_plan_keeps_groups_whole_for_any_seed() -> None:
    keyed = [(n, f"g{n % 7}") for n in range(1, 50)]
    for seed in range(20):
        planned = plan_split(keyed, 0.3, seed)
        held_groups = {f"g{n % 7}" for n in planned.heldout}
        assert held_groups.isdisjoint({f"g{n % 7}" for n in planned.train})
        assert 0 < len(planned.heldout) < 49


def test_too_few_groups_or_bad_ratio_is_refused() -> None:
    with pytest.raises(SplitError):
        plan_split([(1, "a"), (2, "a"), (3, "a")], 0.3, 0)
    with pytest.raises(SplitError):
        plan_split([(1, "a"), (2, "b")], 1.0, 0)


def test_bad_data_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(conversation("q?", "a.")) + "\n{oops\n")
    with pytest.raises(DataError) as error:
        split_file(path, 0.3, 0)
    assert error.value.problems[0].startswith(f"{path}:2: malformed JSON")


def test_never_written_onto_the_input(tmp_path: Path) -> None:
    path, _ = dataset(tmp_path)
    before = path.read_bytes()
    planned = split_file(path, 0.3, 0)
    with pytest.raises(SplitError, match="input"):
        write_split(path, planned, tmp_path / "." / "all.jsonl", tmp_path / "h.jsonl")
    with pytest.raises(SplitError, match="same file"):
        write_split(path, planned, tmp_path / "x.jsonl", tmp_path / "x.jsonl")
    assert path.read_bytes() == before and not (tmp_path / "h.jsonl").exists()


def test_a_byte_order_mark_stays_out_of_the_lines(tmp_path: Path) -> None:
    path, lines = dataset(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    planned = split_file(path, 0.3, 0)
    write_split(path, planned, tmp_path / "t.jsonl", tmp_path / "h.jsonl")
    written = (tmp_path / "t.jsonl").read_bytes() + (tmp_path / "h.jsonl").read_bytes()
    assert sorted(line for line in written.split(b"\n") if line) == sorted(lines)


def test_a_studys_validation_split_keeps_conversations_together_on_both_backends(tmp_path: Path) -> None:
    """``data.validation_split`` uses the same grouping: no held-out prompt the model trained on."""
    from harness.backends.openai.training_file import load_dataset
    from harness.config import DataConfig
    from harness.data.split import load_splits

    path, _ = dataset(tmp_path)

    def first_user(messages: Any) -> str:
        return next(m["content"] for m in messages if m["role"] == "user")

    for seed in range(5):
        train, held = load_splits(DataConfig(train_file=path, validation_split=0.3, shuffle_seed=seed), SYSTEM)
        assert held and not {first_user(e.messages) for e in train} & {first_user(e.messages) for e in held}
        remote = load_dataset(path, None, 0.3, seed, SYSTEM)
        assert remote.validation and not (
            {first_user(r["messages"]) for r in remote.train} & {first_user(r["messages"]) for r in remote.validation}
        )
        assert [e.messages for e in held] == [tuple(r["messages"]) for r in remote.validation]  # one rule
