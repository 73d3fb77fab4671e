import json
from pathlib import Path

import pytest

from harness.data.chat import DataError, digest, load_jsonl, with_system_prompt
from harness.data.split import split_examples as split
from tests.conftest import chat_record, write_jsonl


def problems_for(tmp_path: Path, lines: list) -> list[str]:
    path = write_jsonl(tmp_path / "bad.jsonl", [chat_record("q", "a"), *lines])
    with pytest.raises(DataError) as error:
        load_jsonl(path)
    return error.value.problems


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"messages": [', "malformed JSON"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
        (
            {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
            "unknown role 'robot'",
        ),
        (
            {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
            "messages[0].content: missing or empty",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y", "weight": 2}]},
            "weight: must be 0 or 1",
        ),
        (
            {"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "y"}]},
            "only assistant messages",
        ),
        ({"prompt": "q", "completion": "a"}, "unrecognised key 'completion'"),
        ([1, 2], "must be a JSON object"),
        ({"messages": []}, "missing or empty 'messages'"),
    ],
)
def test_each_problem_names_file_line_and_field(tmp_path: Path, line, expected: str) -> None:
    problems = problems_for(tmp_path, [line])
    assert any(p.startswith(f"{tmp_path / 'bad.jsonl'}:2: ") and expected in p for p in problems), problems


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, ["{", json.dumps({"messages": [{"role": "user", "content": "q"}]})])
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["2", "3"]


def test_shipped_sample_data_is_valid() -> None:
    train = load_jsonl(Path("experiments/data/programmer_train.jsonl"))
    heldout = load_jsonl(Path("experiments/data/programmer_heldout.jsonl"))
    assert len(train) >= 60 and len(heldout) >= 15
    questions = {e.messages[1]["content"] for e in train}
    assert not questions & {e.messages[1]["content"] for e in heldout}


def test_split_is_seeded_and_disjoint(tmp_path: Path, chat_files) -> None:
    examples = load_jsonl(chat_files[0])
    train, validation = split(examples, 0.3, seed=42)
    assert len(validation) == round(len(examples) * 0.3)
    assert {e.source for e in train}.isdisjoint({e.source for e in validation})
    assert [e.source for e in split(examples, 0.3, seed=42)[1]] == [e.source for e in validation]


def test_system_prompt_added_only_where_missing(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            chat_record("q", "a"),
        ],
    )
    examples = with_system_prompt(load_jsonl(path), "Be terse.")
    assert examples[0].messages[0] == {"role": "system", "content": "Be terse."}
    assert examples[1].messages[0]["content"] != "Be terse."
    assert digest(examples) == digest(list(examples))


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(chat_record("q", "a")) + "\n").encode())
    assert [e.source for e in load_jsonl(path)] == [f"{path}:1"]


def test_only_newline_ends_a_line(tmp_path: Path) -> None:
    # U+2028 and U+0085 are legal unescaped in a JSON string; str.splitlines() breaks on them.
    answer = "first\u2028second\u0085third"
    record = json.dumps(chat_record("q", answer), ensure_ascii=False)
    path = tmp_path / "separators.jsonl"
    path.write_bytes(f"{record}\r\n{record}\n{{broken\n".encode())
    with pytest.raises(DataError) as error:
        load_jsonl(path)
    assert error.value.problems == [
        f"{path}:3: malformed JSON: Expecting property name enclosed in double quotes (column 2)"
    ]
    path.write_bytes(f"{record}\r\n{record}\n".encode())
    examples = load_jsonl(path)
    assert [e.reference for e in examples] == [answer, answer]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:2"]
