from __future__ import annotations

import pytest

from harness.evaluation.layout import Block, blocks, detail, structure

REFERENCE = """`list.reverse()` reverses the list in place and returns `None`, while `[::-1]` returns a new copy.

**Example:**
```python
nums = [1, 2, 3]
nums.reverse()
```

**Tip:** Use `reversed(nums)` when you only need to iterate backwards."""

SAME_LAYOUT_OTHER_WORDS = """Use `sorted(items, key=len)` to sort by length; the original list is left untouched.

**Example:**
```python
words = ["ccc", "a", "bb"]
print(sorted(words, key=len))
```

**Tip:** Pass `reverse=True` to put the longest words first."""

FLATTENED = (
    "`list.reverse()` reverses the list in place and returns `None`, while `[::-1]` returns a new copy. "
    "Example: nums = [1, 2, 3] nums.reverse() Tip: Use `reversed(nums)` when you only need to iterate backwards."
)


def test_blocks_of_a_house_style_answer() -> None:
    assert blocks(REFERENCE) == [
        Block("paragraph", "opening", size=1, words=16),
        Block("label", "example", size=1),
        Block("code", "python", size=2),
        Block("label", "tip", size=1, words=10),
    ]


def test_blocks_of_headings_lists_tables_and_quotes() -> None:
    text = """## Overview

Some intro text
that continues.

Steps:
1. First
2. Then
   - nested
3. Finally

- a

- b

| a | b |
|---|---|
| 1 | 2 |

> quoted
> more
```
plain fence
```"""
    assert [(b.kind, b.label, b.size) for b in blocks(text)] == [
        ("heading", "h2", 1),
        ("paragraph", "", 2),
        ("label", "steps", 1),
        ("numbers", "", 4),
        ("bullets", "", 2),
        ("table", "", 2),
        ("quote", "", 2),
        ("code", "", 1),
    ]


def test_label_spellings_are_normalised() -> None:
    text = "**Note**: one\n\n__Step 2:__\n\nCommon pitfalls:\n\n**Why it matters**"
    assert [b.label for b in blocks(text)] == ["note", "step", "common pitfalls", "why it matters"]


def test_label_text_continues_on_following_lines() -> None:
    assert blocks("**Tip:** use this\nwhen you can.") == [Block("label", "tip", size=2, words=5)]


def test_long_colon_line_is_prose_not_a_label() -> None:
    assert [b.kind for b in blocks("This sentence is far too long to be a label:\n\n- item")] == [
        "paragraph",
        "bullets",
    ]


def test_unclosed_fence_runs_to_the_end() -> None:
    assert blocks("Intro.\n\n```bash\necho hi\nls") == [
        Block("paragraph", "opening", size=1, words=1),
        Block("code", "bash", size=2),
    ]


def test_empty_text_has_no_blocks() -> None:
    assert blocks("") == []
    assert blocks("\n\n  \n") == []


def test_structure_ranks_layouts() -> None:
    no_code = REFERENCE.replace("```python\nnums = [1, 2, 3]\nnums.reverse()\n```\n", "")
    bash = REFERENCE.replace("```python", "```bash")
    identical, same_layout, flattened, other_language, missing_code = structure(
        [REFERENCE, SAME_LAYOUT_OTHER_WORDS, FLATTENED, bash, no_code], [REFERENCE] * 5
    )
    assert identical == pytest.approx(1.0)
    assert same_layout == pytest.approx(1.0)
    assert flattened < 0.5
    assert missing_code < other_language < 1.0


def test_structure_learns_labels_from_the_reference() -> None:
    reference = "Intro.\n\n**Pitfall:** a\n\n**Fix:** b"
    same_labels = "Other intro.\n\n**Pitfall:** c d\n\n**Fix:** e"
    other_labels = "Other intro.\n\n**Example:** c d\n\n**Tip:** e"
    as_paragraphs = "Other intro.\n\nc d\n\ne"
    scores = structure([same_labels, other_labels, as_paragraphs], [reference] * 3)
    assert scores[0] > scores[1] > scores[2]


def test_structure_of_empty_texts() -> None:
    assert structure(["", "", "text"], ["", "text", ""]) == [1.0, 0.0, 0.0]


def test_detail_ranks_depth_and_length() -> None:
    no_code = REFERENCE.replace("```python\nnums = [1, 2, 3]\nnums.reverse()\n```\n", "")
    long_opening = " ".join([REFERENCE.split("\n", 1)[0]] * 3)
    three_times = REFERENCE.replace(REFERENCE.split("\n", 1)[0], long_opening).replace("backwards.", "backwards. " * 3)
    same, missing_code, longer = detail([REFERENCE, no_code, three_times], [REFERENCE] * 3)
    assert same == pytest.approx(1.0)
    assert missing_code < 0.75
    assert longer < 0.75


def test_detail_ignores_features_neither_side_has() -> None:
    # Neither text has code or lists, so equal prose length and block count is a full match.
    assert detail(["one two three"], ["four five six"]) == [pytest.approx(1.0)]
    assert detail(["", "x"], ["", ""]) == [1.0, 0.0]


def test_scores_are_within_bounds() -> None:
    texts = [REFERENCE, SAME_LAYOUT_OTHER_WORDS, FLATTENED, "", "# Title\n\n- a\n- b", "```\nunclosed"]
    for answer in texts:
        for score in structure([answer] * len(texts), texts) + detail([answer] * len(texts), texts):
            assert 0.0 <= score <= 1.0


def test_misaligned_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        structure(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        detail(["a", "b"], ["a"])
