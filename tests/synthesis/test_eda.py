"""EDA never touches code or non-user turns, and the same seed gives the same copies."""

from __future__ import annotations

import random

import pytest

from harness.data.chat import Example
from harness.settings.synthesis import AugmentConfig
from harness.synthesis.augment import augment
from harness.synthesis.eda import OPERATIONS, augment_text, code_spans, join, tokenize
from harness.synthesis.lexicon import Lexicon, opposite, same_stem

QUESTION = (
    "Why is `list.sort()` so much faster than calling sorted(items) in a loop, and how do I keep\n"
    "the original order stable when two keys are equal?\n\n"
    "  ```python\n  items.sort(key=lambda pair: pair[1])  # quick check\n  ```\n"
    "Also what does ``a`b`` mean with --force in git push, quickly explained?\n"
    "~~~bash\necho unclosed fence keeps going\n"
)


def synonyms(word: str) -> tuple[str, ...]:
    return ("rapid", "swift") if word in {"faster", "quickly", "keep", "loop"} else ()


def test_tokens_join_back_to_the_text_and_code_is_whole() -> None:
    tokens = tokenize(QUESTION)
    assert join(tokens) == QUESTION
    assert code_spans(QUESTION) == [
        "`list.sort()`",
        "  ```python\n  items.sort(key=lambda pair: pair[1])  # quick check\n  ```",
        "``a`b``",
        "~~~bash\necho unclosed fence keeps going\n",
    ]
    assert {t.text for t in tokens if t.kind == "other"} >= {"sorted(items)", "--force"}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_operation_changes_code(operation: str) -> None:
    changed = 0
    for seed in range(40):
        out = augment_text(QUESTION, operation, 0.3, random.Random(seed), synonyms)
        assert code_spans(out) == code_spans(QUESTION)
        assert "sorted(items)" in out and "--force" in out
        changed += out != QUESTION
    assert changed >= 35


def test_deletion_never_empties_a_turn() -> None:
    for seed in range(20):
        out = augment_text("Explain decorators", "delete", 0.5, random.Random(seed), synonyms)
        assert out.strip() and out.strip() != "Explain decorators" and "  " not in out


def examples() -> list[Example]:
    return [
        Example(
            (
                {"role": "system", "content": "Be precise."},
                {"role": "user", "content": f"{QUESTION} (case {i})"},
                {"role": "assistant", "content": "Use `sort` in place.", "weight": 1},
                {"role": "user", "content": "And how do I keep it fast in a loop?"},
                {"role": "assistant", "content": "Hoist the key function."},
            ),
            f"train.jsonl:{i + 1}",
        )
        for i in range(4)
    ]


def test_eda_copies_change_user_turns_only_and_are_deterministic() -> None:
    config = AugmentConfig(factor=3, seed=5)
    made = augment(examples(), "eda", config, synonyms=synonyms)
    again = augment(list(reversed(examples())), "eda", config, synonyms=synonyms)
    assert made.examples[:4] == examples()  # originals first, unchanged
    assert made.copies + made.skipped == 12 and made.copies >= 10
    for copy, origin in zip(made.examples[4:], made.origins, strict=True):
        original = examples()[origin].messages
        assert [m["role"] for m in copy.messages] == [m["role"] for m in original]
        for new, old in zip(copy.messages, original, strict=True):
            if old["role"] != "user":
                assert new == old  # system and assistant turns (and their weights) as they were
            else:
                assert code_spans(new["content"]) == code_spans(old["content"])
    # Per-example seeding: the copies of an example do not depend on where it sits in the file.
    by_content = {json_key(e) for e in made.examples[4:]}
    assert by_content == {json_key(e) for e in again.examples[4:]}
    other_seed = augment(examples(), "eda", AugmentConfig(factor=3, seed=6), synonyms=synonyms)
    assert {json_key(e) for e in other_seed.examples[4:]} != by_content


def json_key(example: Example) -> str:
    import json

    return json.dumps(example.messages, sort_keys=True)


def test_lexicon_neighbours_skip_inflections_and_antonyms() -> None:
    import numpy as np

    words = ["fast", "faster", "quick", "slow", "speed"]
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.9, 0.1], [0.95, 0.05], [0.1, 1.0]])
    lexicon = Lexicon(words, vectors, threshold=0.5)
    assert lexicon("fast") == ("quick",)
    assert lexicon("unknown") == () and lexicon("the") == ()
    assert same_stem("use", "uses") and same_stem("easy", "easier") and not same_stem("fast", "quick")
    assert opposite("remembering", "forgetting") and opposite("slow", "fast") and not opposite("fast", "quick")
