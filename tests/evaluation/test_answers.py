"""harness score: answers from anywhere, scored with the study's scorers; bad lines stop everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.chat import DataError, Example
from harness.evaluation.answers import load_answers
from harness.evaluation.asserts import grade
from harness.evaluation.scoring import composite
from harness.evaluation.task import checked_example

runner = CliRunner()
REFERENCE = "Use `enumerate()`.\n\n**Example:**\n```python\nfor i, x in enumerate(xs):\n    print(i, x)\n```\n\n**Tip:** Start at 1 with `start=1`."
SAME_LAYOUT = "Call `enumerate()` on the list.\n\n**Example:**\n```python\nfor n, item in enumerate(items):\n    print(n, item)\n```\n\n**Tip:** Pass `start=1` to count from one."
FLAT = "Call enumerate() on the list. for n, item in enumerate(items): print(n, item). Pass start=1 to count from one."


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_bad_lines_are_all_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        [
            {"question": "q", "reference": "r", "answer": "a"},
            "{oops",
            {"question": "q", "reference": "r", "anwser": "a"},
            {"question": "", "reference": "r", "answer": "a", "id": 3},
            {"question": "q", "reference": 5, "answer": "a", "id": [1]},
        ],
    )
    with pytest.raises(DataError) as error:
        load_answers(path)
    problems = error.value.problems
    assert problems[0].startswith(f"{path}:2: malformed JSON")
    assert f'{path}:3: missing field "answer"' in problems
    assert f'{path}:4: field "question" is empty' in problems
    assert f'{path}:5: field "reference" must be a string, got int' in problems
    assert f'{path}:5: field "id" must be a string or an integer' in problems


def test_ids_default_to_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        [
            {"question": "q", "reference": "r", "answer": ""},
            {"question": "q", "reference": "r", "answer": "a", "id": 7},
        ],
    )
    assert [r.id for r in load_answers(path)] == ["1", "7"]


def test_bom_and_line_separators_keep_ids_and_text(tmp_path: Path) -> None:
    # The same reader as the training data: BOM accepted, lines end at "\n" only.
    answer = "one\u2028two\u0085three"
    row = json.dumps({"question": "q", "reference": "r", "answer": answer}, ensure_ascii=False)
    path = tmp_path / "a.jsonl"
    path.write_bytes(("\ufeff" + row + "\r\n" + row + "\n").encode())
    records = load_answers(path)
    assert [(r.id, r.answer) for r in records] == [("1", answer), ("2", answer)]


def test_composite_renormalises_over_present_scores() -> None:
    columns = {"structure": [1.0, None, 0.2], "rouge_l": [0.5, 0.5, None], "embedding": [-0.3, 0.9, 0.4]}
    values = composite(columns, {"structure": 0.5, "rouge_l": 0.25, "embedding": 0.25, "detail": 1.0})
    assert values[0] == pytest.approx(0.5 * 1 + 0.25 * 0.5 + 0.25 * 0.0)  # a negative cosine counts as 0
    assert values[1] == pytest.approx((0.25 * 0.5 + 0.25 * 0.9) / 0.5)
    assert values[2] == pytest.approx((0.5 * 0.2 + 0.25 * 0.4) / 0.75)


def test_score_command_writes_every_score(study_yaml: Path, tmp_path: Path) -> None:
    answers = write(
        tmp_path / "answers.jsonl",
        [
            {
                "id": "same-layout",
                "question": "How do I loop with an index?",
                "reference": REFERENCE,
                "answer": SAME_LAYOUT,
            },
            {"id": "flat", "question": "How do I loop with an index?", "reference": REFERENCE, "answer": FLAT},
        ],
    )
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(
        app, ["score", str(study_yaml), str(answers), "--out", str(out), "--scorers", "structure,detail,rouge_l"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["same-layout", "flat"]
    assert {"structure", "detail", "rouge_l", "consistency"} <= set(rows[0])
    assert rows[0]["structure"] > rows[1]["structure"]
    assert rows[0]["consistency"] > rows[1]["consistency"]


def test_score_command_refuses_bad_lines_and_scores_nothing(study_yaml: Path, tmp_path: Path) -> None:
    answers = write(tmp_path / "answers.jsonl", [{"question": "q", "reference": "r", "answer": "a"}, {"question": "q"}])
    out = tmp_path / "scored.jsonl"
    result = runner.invoke(app, ["score", str(study_yaml), str(answers), "--out", str(out), "--scorers", "rouge_l"])
    assert result.exit_code == 2
    assert f"{answers}:2:" in result.output and "answer" in result.output
    assert not out.exists()


def test_score_command_rejects_unknown_scorers(study_yaml: Path, tmp_path: Path) -> None:
    answers = write(tmp_path / "answers.jsonl", [{"question": "q", "reference": "r", "answer": "a"}])
    result = runner.invoke(app, ["score", str(study_yaml), str(answers), "--scorers", "rouge_l,vibes"])
    assert result.exit_code == 2 and "vibes" in result.output


def test_a_python_check_gets_the_same_example_fields_as_in_a_study(tmp_path: Path) -> None:
    check = {"type": "python", "value": "tests.evaluation.check_functions:last_message_is_reference"}
    path = write(tmp_path / "a.jsonl", [{"question": "q", "reference": "r", "answer": "a", "assert": [check]}])
    scored = load_answers(path)[0].checked
    assert scored is not None
    example = Example(({"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}), "d.jsonl:1")
    in_study = checked_example(example, scored.checks, "d.jsonl:1")
    assert scored.context.keys() == in_study.context.keys()
    assert grade(scored.checks, "a", scored.context).correct and grade(in_study.checks, "a", in_study.context).correct
