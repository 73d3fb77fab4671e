"""``python`` checks the assertion tests name (``tests.evaluation.check_functions:...``)."""

from __future__ import annotations

import math
from typing import Any


def hello_at_5(answer: str, example: dict[str, Any]) -> bool:
    # promptfoo's documented example: output[5:10] == 'Hello'
    return answer[5:10] == "Hello"


def log_length(answer: str, example: dict[str, Any]) -> float:
    # promptfoo's documented example: math.log10(len(output)) * 10, a score
    return math.log10(len(answer)) * 10


def half(answer: str, example: dict[str, Any]) -> float:
    return 0.5


def zero(answer: str, example: dict[str, Any]) -> float:
    return 0.0


def grading_result(answer: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"pass": answer == "Expected output", "score": 0.5, "reason": "custom reason"}


def names_reference(answer: str, example: dict[str, Any]) -> bool:
    return example["reference"] in answer


def last_message_is_reference(answer: str, example: dict[str, Any]) -> bool:
    return example["messages"][-1]["content"] == example["reference"]


def boom(answer: str, example: dict[str, Any]) -> bool:
    raise RuntimeError("the checker broke")


def returns_text(answer: str, example: dict[str, Any]) -> str:
    return "maybe"


NOT_A_FUNCTION = 3
