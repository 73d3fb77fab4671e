"""Every check type against promptfoo's documented semantics (examples from its assertion docs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.evaluation.asserts import grade, run_check
from harness.settings.asserts import Assertion, split_commas

FN = "tests.evaluation.check_functions"
EXAMPLE: dict[str, Any] = {"question": "q", "reference": "port 8443"}


def passes(type_: str, value: Any, answer: str, **extra: Any) -> bool:
    return run_check(Assertion(type=type_, value=value, **extra), answer, EXAMPLE).passed


@pytest.mark.parametrize(
    ("type_", "value", "answer", "expected"),
    [
        ("equals", "Hello, World!", "Hello, World!", True),
        ("equals", "Hello, World!", "Hello, World! ", False),  # exact: no trimming
        ("equals", {"key": "value"}, '{"key": "value"}', True),  # an object value compares parsed JSON
        ("equals", {"key": "value"}, "key: value", False),
        ("equals", {"flag": True}, '{"flag": 1}', False),  # strict: true is not 1
        ("equals", 42, "42", True),
        ("contains", "The expected substring", "here is The expected substring.", True),
        ("contains", "The expected substring", "the expected substring", False),
        ("contains", 0, "answer: 0", True),  # numbers are matched as text
        ("icontains", "The expected substring", "THE EXPECTED SUBSTRING", True),
        ("starts-with", "The answer", "The answer is 4", True),
        ("starts-with", "The answer", "So, The answer is 4", False),
        ("regex", r"\d{4}", "call 8443", True),
        ("regex", r"\d{4}", "call 844", False),
        ("regex", "^Hello.*world$", "Hello big world", True),
        ("is-json", None, '{"a": [1, 2]}', True),
        ("is-json", None, "{'a': 1}", False),
        ("not-contains", "error", "all good", True),
        ("not-contains", "error", "an error", False),
        ("not-icontains", "error", "an ERROR", False),
        ("not-equals", "x", "y", True),
        ("not-regex", r"\d", "no digits", True),
    ],
)
def test_single_checks(type_: str, value: Any, answer: str, expected: bool) -> None:
    assert passes(type_, value, answer) is expected


@pytest.mark.parametrize(
    ("type_", "value", "answer", "expected"),
    [
        ("contains-all", ["Value 1", "Value 2", "Value 3"], "Value 1, Value 2 and Value 3", True),
        ("contains-all", ["Value 1", "Value 2", "Value 3"], "Value 1 and Value 3", False),
        ("contains-any", ["Value 1", "Value 2", "Value 3"], "only Value 2", True),
        ("contains-any", ["Value 1", "Value 2"], "value 1", False),
        ("icontains-any", ["Value 1", "Value 2"], "VALUE 1", True),
        ("icontains-all", ["Paris", "France"], "paris is in FRANCE", True),
        ("icontains-all", ["Paris", "France"], "paris", False),
        # A YAML/JSON list keeps a comma inside an item: '1,000' is one value.
        ("contains-all", ["1,000", "in stock"], "1,000 units in stock", True),
        ("contains-all", ["1,000", "in stock"], "1 units in stock", False),
        # A string is promptfoo's comma-separated form: 'Paris,London' is two values.
        ("contains-any", "Paris,London", "I like London", True),
        ("contains-all", "Paris, France", "Paris, France", True),
        ("contains-all", "Paris, France", "Paris", False),
        ("contains-all", '"1,000", in stock', "1,000 in stock", True),
        ("not-contains-any", ["sorry", "cannot"], "Sure: 8443", True),
        ("not-contains-all", ["a", "b"], "a only", True),
    ],
)
def test_list_checks(type_: str, value: Any, answer: str, expected: bool) -> None:
    assert passes(type_, value, answer) is expected


def test_comma_separated_values_follow_promptfoo_parsing() -> None:
    assert split_commas("Paris,London") == ["Paris", "London"]
    assert split_commas(" a , b ,, c ,") == ["a", "b", "c"]  # trimmed, empty fields skipped
    assert split_commas('"1,000", "say ""hi""", "back\\"slash"') == ["1,000", 'say "hi"', 'back"slash']
    with pytest.raises(ValueError, match="unterminated"):
        split_commas('"open, field')
    with pytest.raises(ValueError, match="expected a comma"):
        split_commas('"a" b')


def test_weighted_score_and_threshold_as_documented() -> None:
    # promptfoo's docs: equals (weight 2) fails and contains (weight 1) passes on 'Goodbye world':
    # the score is 1/3; below a 0.5 threshold the test fails, above a 0.2 one it passes.
    checks = [
        Assertion(type="equals", value="Hello world", weight=2),
        Assertion(type="contains", value="world", weight=1),
    ]
    plain = grade(checks, "Goodbye world", EXAMPLE)
    assert plain.score == pytest.approx(1 / 3) and not plain.correct
    assert [r.check.type for r in plain.failed] == ["equals"]
    assert "equal 'Hello world'" in plain.reason
    assert not grade(checks, "Goodbye world", EXAMPLE, threshold=0.5).correct
    low = grade(checks, "Goodbye world", EXAMPLE, threshold=0.2)
    assert low.correct and low.failed  # the threshold decides; the failed check is still reported
    assert "score 0.33 >= threshold 0.2" in low.reason
    # A threshold of 0 passes whatever fails: scores are collected, nothing fails the example.
    assert grade(checks, "nothing alike", EXAMPLE, threshold=0).correct
    both = grade(checks, "Hello world", EXAMPLE)
    assert both.correct and both.score == 1.0 and both.reason == ""


def test_weight_zero_always_passes_and_does_not_count() -> None:
    checks = [Assertion(type="contains", value="8443"), Assertion(type="contains", value="TLS", weight=0)]
    verdict = grade(checks, "port 8443", EXAMPLE)
    assert verdict.correct and verdict.score == 1.0
    assert "would fail" in verdict.results[1].reason
    only_zero = grade([Assertion(type="contains", value="x", weight=0)], "y", EXAMPLE)
    assert only_zero.correct and only_zero.score == 0.0  # no weight at all: score 0, still passes


def test_python_bool_number_and_result_mapping() -> None:
    assert passes("python", f"{FN}:hello_at_5", "12345Hello")
    assert not passes("python", f"{FN}:hello_at_5", "Hello")
    # A number is a score: it passes above 0 without a threshold, at or above the threshold with one.
    scored = run_check(Assertion(type="python", value=f"{FN}:log_length"), "x" * 100, EXAMPLE)
    assert scored.passed and scored.score == pytest.approx(20.0)
    assert not passes("python", f"{FN}:zero", "a")
    assert passes("python", f"{FN}:half", "a", threshold=0.5)
    under = run_check(Assertion(type="python", value=f"{FN}:half", threshold=0.6), "a", EXAMPLE)
    assert not under.passed and under.score == 0.5 and "threshold 0.6" in under.reason
    mapped = run_check(Assertion(type="python", value=f"{FN}:grading_result"), "Expected output", EXAMPLE)
    assert mapped.passed and mapped.score == 0.5
    wrong = run_check(Assertion(type="python", value=f"{FN}:grading_result"), "other", EXAMPLE)
    assert not wrong.passed and wrong.reason == "custom reason"
    assert passes("python", f"{FN}:names_reference", "it is port 8443")  # the example is passed in


def test_not_python_inverts_the_pass_and_keeps_a_numeric_score() -> None:
    negated = run_check(Assertion(type="not-python", value=f"{FN}:half", threshold=0.6), "a", EXAMPLE)
    assert negated.passed and negated.score == 0.5
    assert not passes("not-python", f"{FN}:hello_at_5", "12345Hello")


def test_python_weight_feeds_the_weighted_mean() -> None:
    checks = [Assertion(type="python", value=f"{FN}:half"), Assertion(type="contains", value="a", weight=3)]
    assert grade(checks, "a", EXAMPLE).score == pytest.approx((0.5 + 3) / 4)


def test_a_python_check_that_raises_fails_with_the_exception() -> None:
    verdict = grade([Assertion(type="python", value=f"{FN}:boom")], "a", EXAMPLE)
    assert not verdict.correct and verdict.score == 0.0
    assert "raised RuntimeError: the checker broke" in verdict.reason
    odd = run_check(Assertion(type="python", value=f"{FN}:returns_text"), "a", EXAMPLE)
    assert not odd.passed and "expected a bool, a number" in odd.reason


def test_python_check_from_a_file(tmp_path: Path) -> None:
    script = tmp_path / "my_checks.py"
    script.write_text("def short(answer, example):\n    return len(answer) < 10\n")
    assert passes("python", f"{script}:short", "tiny")
    assert not passes("python", f"{script}:short", "far too long an answer")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "contain", "value": "x"}, "unknown assert type 'contain'"),
        ({"type": "contains"}, "a contains check needs a value"),
        ({"type": "contains", "value": ""}, "needs a value"),
        ({"type": "contains", "value": ["a"]}, "must be a string or a number"),
        ({"type": "contains-any", "value": []}, "needs a value"),
        ({"type": "contains-any", "value": " , "}, "no values"),
        ({"type": "contains-all", "value": '"open'}, "unterminated"),
        ({"type": "contains-all", "value": [{"a": 1}]}, "list items must be strings or numbers"),
        ({"type": "regex", "value": "(unclosed"}, "does not compile"),
        ({"type": "starts-with", "value": 3}, "must be a string"),
        ({"type": "is-json", "value": {"type": "object"}}, "JSON Schema validation is not supported"),
        ({"type": "python", "value": "no_colon"}, "module:function"),
        ({"type": "python", "value": "no_such_module_xyz:f"}, "does not import: ModuleNotFoundError"),
        ({"type": "python", "value": f"{FN}:missing"}, "has no function 'missing'"),
        ({"type": "python", "value": f"{FN}:NOT_A_FUNCTION"}, "has no function"),
        ({"type": "contains", "value": "x", "threshold": 0.5}, "only a python check has its own threshold"),
        ({"type": "contains", "value": "x", "weight": -1}, "greater than or equal to 0"),
        ({"type": "contains", "value": "x", "metric": "m"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_checks_are_refused_with_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Assertion.model_validate(raw)


def test_nan_is_not_a_value() -> None:
    with pytest.raises(ValidationError):
        Assertion(type="contains", value=math.nan)
