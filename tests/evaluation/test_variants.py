from __future__ import annotations

import re
from collections import Counter

from harness.evaluation.layout import detail, structure
from harness.evaluation.variants import (
    VARIANTS,
    build,
    first_sentence,
    flatten,
    injected,
    pad_with_chatter,
    poor_answer,
)

QUESTION = "How do I reverse a list in Python?"

REFERENCE = """`list.reverse()` reverses the list in place and returns `None`, while `[::-1]` returns a new copy.

**Example:**
```python
nums = [1, 2, 3]
nums.reverse()
```

**Tip:** Use `reversed(nums)` when you only need to iterate backwards."""

OTHER = """## Sorting by length

1. Call `sorted(items, key=len)`.
2. Pass `reverse=True` for the longest first.

> The original list is left untouched."""


def _words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text))


def test_flatten_removes_layout_and_keeps_words() -> None:
    flat = flatten(REFERENCE)
    assert "\n" not in flat
    assert "**" not in flat
    assert "```" not in flat
    # Only the fence's language tag is layout rather than content.
    assert _words(flat) == _words(REFERENCE) - Counter(["python"])
    assert "nums = [1, 2, 3] nums.reverse()" in flat


def test_flatten_removes_heading_list_and_quote_markers() -> None:
    flat = flatten(OTHER)
    assert flat.startswith("Sorting by length Call `sorted(items, key=len)`.")
    assert "#" not in flat
    assert ">" not in flat
    assert "2." not in flat


def test_flatten_keeps_emphasis_characters_inside_inline_code() -> None:
    assert (
        flatten("Define *your own* `__init__` and **bold** `a*b*c`.") == "Define your own `__init__` and bold `a*b*c`."
    )


def test_flatten_scores_low_on_structure() -> None:
    assert structure([flatten(REFERENCE)], [REFERENCE])[0] < 0.5


def test_first_sentence_does_not_split_inside_code_or_numbers() -> None:
    text = "Use `nums[::-1]` or `x. y` on Python 3.10 and later. Then do more."
    assert first_sentence(text) == "Use `nums[::-1]` or `x. y` on Python 3.10 and later."
    assert first_sentence("Really? Yes.") == "Really?"
    assert first_sentence(REFERENCE) == REFERENCE.split("\n", 1)[0]


def test_first_sentence_of_a_single_sentence_keeps_its_first_words() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    assert first_sentence(text) == "one two three four five six seven eight nine ten eleven twelve"
    assert first_sentence("Just four words here.") == "Just four"


def test_padded_contains_the_reference_and_chatter() -> None:
    padded = pad_with_chatter(REFERENCE, seed=1)
    assert REFERENCE in padded
    assert len(padded) > len(REFERENCE) + 100


def test_injected_contains_the_poor_answer_and_an_instruction() -> None:
    poor = poor_answer(QUESTION)
    texts = {injected(poor, seed) for seed in range(20)}
    assert len(texts) > 1
    for text in texts:
        assert text.startswith(poor)
        assert re.search(r"review|grade|evaluat", text, re.IGNORECASE)


def test_poor_answer_is_a_short_one_liner() -> None:
    answer = poor_answer(QUESTION)
    assert "\n" not in answer
    assert len(answer.split()) < 25
    assert poor_answer("What does `zip()` do?").startswith("`zip()`")


def test_variants_are_deterministic_for_a_seed() -> None:
    assert build(QUESTION, REFERENCE, OTHER, seed=3) == build(QUESTION, REFERENCE, OTHER, seed=3)
    padded = {build(QUESTION, REFERENCE, OTHER, seed=s)["padded"] for s in range(10)}
    assert len(padded) > 1


def test_build_maps_every_variant() -> None:
    answers = build(QUESTION, REFERENCE, OTHER, seed=0)
    assert tuple(answers) == VARIANTS
    assert answers["reference"] == REFERENCE
    assert answers["other"] == OTHER
    assert answers["flattened"] == flatten(REFERENCE)
    assert answers["truncated"] == first_sentence(REFERENCE)


def test_layout_scorers_rank_the_variants() -> None:
    for seed in range(5):
        answers = build(QUESTION, REFERENCE, OTHER, seed)
        texts = list(answers.values())
        shape = dict(zip(answers, structure(texts, [REFERENCE] * len(texts)), strict=True))
        size = dict(zip(answers, detail(texts, [REFERENCE] * len(texts)), strict=True))
        assert shape["reference"] > shape["flattened"]
        assert size["reference"] > size["truncated"]
        assert size["reference"] > size["padded"]
