"""Each synthesis filter rejects what it should and passes a house-style answer (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.settings.synthesis import FilterConfig
from harness.synthesis.filters import FILTERS, asks_back, clean_question, near_duplicates, reject_reason
from harness.synthesis.synth import apply_filters

HOUSE = "Use a set.\n\n**Example:**\n```python\nseen = set(items)\n```\n\n**Tip:** Sets drop duplicates for you."
STRICT = FilterConfig(
    required_labels=("Example", "Tip"), require_code_block=True, require_opening=True, min_words=5, max_words=40
)


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ("How do I reverse a list?", "How do I reverse a list?"),
        ('Question: "How do I reverse a list in place?"', "How do I reverse a list in place?"),
        ("Sure! Here is one:\n1. **How do I merge two dicts?** It is common.", "How do I merge two dicts?"),
        ("Q: Why is my loop slow? Thanks", "Why is my loop slow?"),
        ("Great persona! Question: What is a C# singleton?\nAnswer:", "What is a C# singleton?"),
        ("I know Python well. What would you like to know about files?", "What would you like to know about files?"),
        ("What is e.g. a view in SQL?", "What is e.g. a view in SQL?"),
        ("Here is a question about lists.", None),
        ("Why?", None),
        ("", None),
    ],
)
def test_clean_question(reply: str, question: str | None) -> None:
    assert clean_question(reply) == question


@pytest.mark.parametrize(
    ("question", "answer", "truncated", "reason"),
    [
        (None, HOUSE, False, "question_invalid"),
        ("What would you like to know about files?", HOUSE, False, "question_invalid"),  # a question back
        ("q?", "  \n", False, "empty"),
        ("q?", HOUSE, True, "truncated"),
        ("q?", "Hello! How can I assist you today?", False, "chatter"),  # seed 000's greeting
        ("q?", "That's a great question! " + HOUSE, False, "chatter"),
        ("q?", HOUSE + "\n\nWhich Python version are you on?", False, "question_back"),
        ("q?", HOUSE + "\n\nWhat else would you like to know?", False, "chatter"),
        ("q?", HOUSE.replace("**Tip:**", "Also,"), False, "layout"),
        ("q?", HOUSE.replace("```python\nseen = set(items)\n```", "seen = set(items)"), False, "layout"),
        ("q?", "**Example:**\n```python\nx\n```\n\n**Tip:** Short tip here please.", False, "layout"),  # no opening
        ("q?", HOUSE.replace("Use a set.", "Use a set. " * 30), False, "length"),
        ("q?", HOUSE, False, None),
    ],
)
def test_reject_reason(question: str | None, answer: str, truncated: bool, reason: str | None) -> None:
    assert reject_reason(question, answer, STRICT, truncated) == reason
    assert reason is None or reason in FILTERS


def test_a_question_inside_code_is_not_a_question_back() -> None:
    assert not asks_back("Check it.\n\n```python\nok = input('continue?')\n```")
    assert asks_back("Which Python version do you run?**")


def test_patterns_are_configurable() -> None:
    answer = "Absolutely. " + HOUSE
    assert reject_reason("q?", answer, STRICT) is None
    assert reject_reason("q?", answer, STRICT.model_copy(update={"reject_patterns": ("^absolutely",)})) == "chatter"


def test_near_duplicates_keep_the_first_of_each_group() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.999, 0.0447], [0.6, 0.8]])
    assert near_duplicates(vectors, 0.95) == [False, False, True, False]


def test_apply_filters_counts_every_filter_and_dedups_what_passed_in_order() -> None:
    records = [
        {"question": "a?", "answer": HOUSE},
        {"question": None, "answer": None},
        {"question": "b?", "answer": ""},
        {"question": "a again?", "answer": HOUSE},
        {"question": "c?", "answer": HOUSE},
    ]
    vectors = {"a?": [1.0, 0.0], "a again?": [1.0, 0.0], "c?": [0.0, 1.0]}
    kept, rejected = apply_filters(records, STRICT, lambda texts: np.array([vectors[t] for t in texts]))
    assert [r["question"] for r in kept] == ["a?", "c?"]
    assert dict(rejected) == {name: 0 for name in FILTERS} | {"question_invalid": 1, "empty": 1, "near_duplicate": 1}
    kept, rejected = apply_filters(records, STRICT.model_copy(update={"near_duplicate_threshold": None}), None)
    assert len(kept) == 3 and rejected["near_duplicate"] == 0
