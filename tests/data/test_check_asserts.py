"""Checks and groups on chat rows: validated with file:line and field before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ConfigError, load_config
from harness.data.chat import DataError, load_jsonl, to_record
from tests.conftest import chat_record, write_jsonl

runner = CliRunner()


def row(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    return chat_record(question, answer) | extra


BAD_ROWS: list[tuple[dict[str, Any], str]] = [
    (
        row("q", "a", **{"assert": [{"type": "contians", "value": "a"}]}),
        "assert[0].type: unknown assert type 'contians'",
    ),
    (row("q", "a", **{"assert": [{"type": "icontains"}]}), "assert[0].value: a icontains check needs a value"),
    (
        row("q", "a", **{"assert": [{"type": "equals", "value": "a"}, {"type": "regex", "value": "([a-z]"}]}),
        "assert[1].value: regex '([a-z]' does not compile",
    ),
    (
        row("q", "a", **{"assert": [{"type": "python", "value": "no_such_checks_module:right"}]}),
        "assert[0].value: python check 'no_such_checks_module:right' does not import",
    ),
    (row("q", "a", **{"assert": [{"type": "contains", "value": "a", "weight": -2}]}), "assert[0].weight:"),
    (row("q", "a", **{"assert": {"type": "contains", "value": "a"}}), "assert: must be a list of checks"),
    (row("q", "a", **{"assert": ["contains:a"]}), "assert[0]: a check is an object with a type"),
    (row("q", "a", **{"assert": [{"type": "contains", "value": "a"}], "threshold": "high"}), "threshold: must be"),
    (row("q", "a", threshold=0.5), "threshold: the example has no assert checks"),
    (row("q", "a", group=["g"]), "group: must be a non-empty string or an integer"),
    (row("q", "a", group=True), "group: must be"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ROWS)
def test_data_check_names_file_line_and_field_of_a_bad_check(tmp_path: Path, bad: dict[str, Any], message: str) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [row("fine", "yes", group="g1"), bad])
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:2: {message}" in result.output
    assert f"{path}:1:" not in result.output
    with pytest.raises(DataError, match="1 problem"):  # the sweep's own loader refuses it the same way
        load_jsonl(path)


def test_checks_groups_and_thresholds_load_and_write_back(tmp_path: Path) -> None:
    checks = [{"type": "icontains", "value": "8443"}, {"type": "not-contains", "value": "8080", "weight": 2}]
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            row("Which port?", "Port 8443.", **{"assert": checks, "threshold": 0.5, "group": "port"}),
            row("What port does it use?", "Port 8443.", **{"assert": [{"type": "is-json"}], "group": 7}),
            row("Plain", "No checks."),
        ],
    )
    first, second, plain = load_jsonl(path)
    assert [c.type for c in first.checks] == ["icontains", "not-contains"] and first.checks[1].weight == 2
    assert (first.threshold, first.group, second.group) == (0.5, "port", "7")
    assert (plain.checks, plain.group, plain.threshold) == ((), None, None)
    assert to_record(first) == {
        "messages": first.messages and list(first.messages),
        "assert": checks,
        "threshold": 0.5,
        "group": "port",
    }
    assert to_record(plain) == {"messages": list(plain.messages)}


def test_data_check_counts_checks_and_warns_of_one_sided_groups(tmp_path: Path) -> None:
    check = {"assert": [{"type": "contains", "value": "8443"}]}
    train = write_jsonl(
        tmp_path / "train.jsonl",
        [row("Which port?", "8443", group="port", **check), row("Which flag?", "--fast", group="flag")],
    )
    heldout = write_jsonl(
        tmp_path / "heldout.jsonl",
        [row("Port, please?", "8443", group="port", **check), row("Which class?", "Pool", group="class")],
    )
    result = runner.invoke(app, ["data", "check", str(train), str(heldout)])
    assert result.exit_code == 0, result.output
    assert "examples with assert checks" in result.output
    assert f"group 'flag' appears only in {train}" in result.output
    assert f"group 'class' appears only in {heldout}" in result.output
    assert "'port' appears only" not in result.output


def test_config_asserts_are_validated_at_load(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", [row("q", "a")])
    study = {"study_name": "s", "base_model": "smollm2", "data": {"train_file": str(data)}}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(study | {"evaluation": {"asserts": {"heldout": [{"type": "is-json"}]}}}))
    assert load_config(good).evaluation.asserts["heldout"][0].type == "is-json"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(study | {"evaluation": {"asserts": {"heldout": [{"type": "regex", "value": "("}]}}}))
    with pytest.raises(ConfigError, match=r"evaluation\.asserts\.heldout\.0.*does not compile"):
        load_config(bad)
