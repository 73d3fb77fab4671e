"""Checked answers: run an example's checks on an answer and say whether it is correct, and why not.

Pure (no I/O beyond a ``python`` check's own code). Semantics are promptfoo's:

* each check passes or fails and scores 1 or 0 (a ``python`` check may return its own score);
  a ``not-`` check inverts the pass and the 0/1 score;
* a check of weight 0 always passes and leaves the score alone (it only reports);
* the example's score is the weighted mean of its checks' scores (0 when every weight is 0);
* without a threshold the answer is correct when every check passes; with the example's
  ``threshold`` it is correct when the score reaches it, whatever single checks did.

A ``python`` check that raises fails with the exception as its reason; the evaluation goes on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.settings.asserts import Assertion, as_text, resolve_python


@dataclass(frozen=True)
class CheckResult:
    check: Assertion
    passed: bool
    score: float
    reason: str  # why it failed; "passed" when it did not

    def describe(self) -> str:
        """E.g. ``contains 'port 8443': expected the answer to contain '8443'``."""
        value = "" if self.check.value is None else f" {_short(self.check.value)}"
        return f"{self.check.type}{value}: {self.reason}"


@dataclass(frozen=True)
class Verdict:
    """An answer's checks, combined: ``correct`` and the weighted ``score``."""

    correct: bool
    score: float
    results: tuple[CheckResult, ...]
    threshold: float | None = None

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def reason(self) -> str:
        """One line for a table: which checks failed and why (or the threshold's verdict)."""
        failures = "; ".join(r.describe() for r in self.failed)
        if self.threshold is None:
            return failures
        verdict = f"score {self.score:.2f} {'>=' if self.correct else '<'} threshold {self.threshold:g}"
        return f"{verdict}; {failures}" if failures else verdict


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(check: Assertion, answer: str, example: Mapping[str, Any]) -> CheckResult:
    """One check on one answer. ``example`` is what a python check receives as its second argument."""
    if check.base_type == "python":
        result = _python(check, answer, example)
    else:
        passed, reason = _deterministic(check, answer)
        passed = passed != check.inverse
        result = CheckResult(check, passed, 1.0 if passed else 0.0, "passed" if passed else reason)
    if check.weight == 0 and not result.passed:
        # promptfoo: a weight-0 check cannot fail the example; its score is still recorded.
        return CheckResult(check, True, result.score, f"passed (weight 0; would fail: {result.reason})")
    return result


def _deterministic(check: Assertion, answer: str) -> tuple[bool, str]:
    """(whether the un-negated check holds, the reason it does not / would not)."""
    kind, value = check.base_type, check.value
    negated = "not " if check.inverse else ""
    if kind == "equals":
        if isinstance(value, dict | list):
            return _json_equals(answer, value), f"expected the answer to {negated}be the JSON {_short(value)}"
        return answer == as_text(value), f"expected the answer to {negated}equal {_short(as_text(value))}"
    if kind in ("contains", "icontains"):
        fold = _fold if kind == "icontains" else str
        return fold(as_text(value)) in fold(answer), f"expected the answer to {negated}contain {_short(value)}"
    if kind == "starts-with":
        return answer.startswith(value), f"expected the answer to {negated}start with {_short(value)}"
    if kind == "regex":
        return re.search(value, answer) is not None, f"expected the answer to {negated}match /{value}/"
    if kind == "is-json":
        return _is_json(answer), f"expected the answer to {negated}be valid JSON"
    return _listed(check, answer)


def _listed(check: Assertion, answer: str) -> tuple[bool, str]:
    fold = _fold if check.base_type.startswith("i") else str
    values = check.values
    found = [v for v in values if fold(v) in fold(answer)]
    negated = "not " if check.inverse else ""
    if check.base_type.endswith("-any"):
        return bool(found), f"expected the answer to {negated}contain one of {_short(values)}"
    missing = [v for v in values if v not in found]
    return not missing, f"expected the answer to {negated}contain all of {_short(values)}; missing {_short(missing)}"


def _fold(text: str) -> str:
    return text.lower()


def _is_json(answer: str) -> bool:
    try:
        json.loads(answer)
    except ValueError:
        return False
    return True


def _json_equals(answer: str, expected: Any) -> bool:
    try:
        parsed = json.loads(answer)
    except ValueError:
        return False
    return _same(parsed, expected)


def _same(a: Any, b: Any) -> bool:
    """Deep equality where true is not 1 (JavaScript's strict equality; Python's == says True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _python(check: Assertion, answer: str, example: Mapping[str, Any]) -> CheckResult:
    """Call the user's function; a bool passes or fails, a number is a score, a mapping is
    promptfoo's {pass, score, reason}. Anything it raises fails this check, not the evaluation."""
    try:
        returned = resolve_python(check.value)(answer, dict(example))
        passed, score, reason = _python_outcome(check, returned)
    except Exception as exc:  # the user's code: any exception is this example's failure
        return CheckResult(check, False, 0.0, f"raised {type(exc).__name__}: {exc}")
    passed = passed != check.inverse
    if isinstance(returned, bool):  # a negated bool check scores its negated pass, like the others
        score = 1.0 if passed else 0.0
    return CheckResult(check, passed, score, "passed" if passed else reason)


def _python_outcome(check: Assertion, returned: Any) -> tuple[bool, float, str]:
    """(un-negated pass, score, reason) of what a python check returned."""
    target = check.value
    if isinstance(returned, bool):
        return returned, 1.0 if returned else 0.0, f"{target} returned {returned}"
    if isinstance(returned, int | float) and math.isfinite(returned):
        score = float(returned)
        if check.threshold is None:
            return score > 0, score, f"{target} returned {score:g} (passes above 0)"
        return score >= check.threshold, score, f"{target} returned {score:g}, under the threshold {check.threshold:g}"
    if isinstance(returned, Mapping) and isinstance(returned.get("pass", returned.get("pass_")), bool):
        passed = returned.get("pass", returned.get("pass_"))
        score = returned.get("score", 1.0 if passed else 0.0)
        reason = str(returned.get("reason") or f"{target} returned pass={passed}")
        if check.threshold is not None and score < check.threshold:
            passed, reason = False, f"score {score:g} is under the threshold {check.threshold:g}: {reason}"
        return passed, float(score), reason
    raise TypeError(f"{target} returned {returned!r}; expected a bool, a number or {{pass, score, reason}}")


def grade(
    checks: Sequence[Assertion], answer: str, example: Mapping[str, Any], threshold: float | None = None
) -> Verdict:
    """Every check on one answer, combined as promptfoo combines a test case's assertions."""
    results = tuple(run_check(c, answer, example) for c in checks)
    total = math.fsum(r.check.weight for r in results)
    score = math.fsum(r.score * r.check.weight for r in results) / total if total > 0 else 0.0
    correct = score >= threshold if threshold is not None else all(r.passed for r in results)
    return Verdict(correct, score, results, threshold)
