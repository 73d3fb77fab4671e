from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.endpoints.client import make_client
from harness.evaluation.judge import Judge
from harness.evaluation.rubric import load_rubric
from harness.evaluation.scoring import composite, deterministic_columns, score_split
from harness.settings.evaluation import JudgeConfig
from tests.evaluation.fake_server import FakeState, Reply, fake_server

RUBRIC = Path(__file__).resolve().parents[2] / "evals" / "consistency_rubric.yaml"
QUESTIONS = ["How do I loop with an index?", "How do I dedupe a list?", "What is *args?"]
REFERENCES = ["Use enumerate().", "Use dict.fromkeys().", "Extra positional arguments."]
ANSWERS = ["Use enumerate().", "Use a set.", "I can't help with that."]


class FixedEmbedder:
    def similarities(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        return [0.9, 0.5, 0.1][: len(answers)]


def test_metrics_and_rows_for_every_scorer() -> None:
    state = FakeState(
        reply=lambda body: Reply("I can't help with that.") if "*args" in body["messages"][1]["content"] else Reply()
    )
    with fake_server(state) as url:
        config = JudgeConfig(kind="base_url", model="fake", rubric=RUBRIC, max_retries=0)
        judge = Judge(config, make_client(config, url), load_rubric(RUBRIC))
        result = score_split(
            "heldout",
            QUESTIONS,
            REFERENCES,
            ANSWERS,
            scorers=("embedding", "rouge_l", "judge"),
            embedder=FixedEmbedder(),
            judge=judge,  # type: ignore[arg-type]
        )
    metrics = result.metrics
    assert metrics["consistency/heldout/embedding"] == pytest.approx(0.5)
    assert metrics["consistency/heldout/rouge_l"] == pytest.approx((1.0 + 0.4 + 0.0) / 3, abs=0.1)
    # The refusal is missing, not zero: the mean is over the two judged answers.
    assert metrics["consistency/heldout/judge"] == pytest.approx(80.0)
    assert metrics["consistency/heldout/judge_structure"] == pytest.approx(80.0)
    assert {f"consistency/heldout/judge_{k}" for k in ("content", "detail", "style")} <= set(metrics)
    assert metrics["consistency/heldout/judge_missing"] == 1.0
    assert len(result.rows) == 3
    row = result.rows[2]
    assert row["question"] == "What is *args?" and row["answer"] == "I can't help with that."
    assert row["judge"] is None and row["judge_error"] == "refusal"
    assert result.rows[0]["judge_reasons"] == "Close to the reference in layout." and result.rows[0]["embedding"] == 0.9


def test_only_requested_scorers_run() -> None:
    result = score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("rouge_l",))
    assert set(result.metrics) == {"consistency/train/rouge_l"}
    assert set(result.rows[0]) == {"question", "reference", "answer", "rouge_l"}


def test_misuse_fails_clearly() -> None:
    with pytest.raises(ValueError, match="embedder"):
        score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("embedding",))
    with pytest.raises(ValueError, match="judge"):
        score_split("train", QUESTIONS, REFERENCES, ANSWERS, scorers=("judge",))
    with pytest.raises(ValueError, match="length"):
        score_split("train", QUESTIONS, REFERENCES[:2], ANSWERS, scorers=("rouge_l",))


# House-style answers and faithful paraphrases of them: the same advice, layout and depth in other
# words. The scorers must rank the paraphrase above every controlled variant of it, all scored
# against the reference: a test that ranked the reference itself would win on identity alone.
HOUSE = {
    "How do I reverse a list in Python?": (
        "Use slicing with a step of -1 to get a reversed copy, or `list.reverse()` to reverse in place.\n\n"
        "**Example:**\n```python\nnums = [1, 2, 3]\nprint(nums[::-1])  # [3, 2, 1]\nnums.reverse()\n```\n\n"
        "**Tip:** `reversed(nums)` gives an iterator when you only need to loop backwards.",
        "Slice with a negative step to build a reversed copy; call `list.reverse()` when the list should change"
        " in place.\n\n"
        "**Example:**\n```python\nvalues = [1, 2, 3]\nbackwards = values[::-1]  # [3, 2, 1]\nvalues.reverse()\n```\n\n"
        "**Tip:** To walk a list from the end without copying it, loop over `reversed(values)`.",
    ),
    "How do I merge two dicts?": (
        "Use the `|` operator (Python 3.9+) to build a new merged dict; keys from the right side win.\n\n"
        '**Example:**\n```python\ndefaults = {"color": "red", "size": 1}\nuser = {"size": 2}\n'
        "merged = defaults | user  # {'color': 'red', 'size': 2}\n```\n\n"
        "**Tip:** `defaults.update(user)` merges in place instead of making a copy.",
        "The `|` operator (3.9 and later) returns a new dict holding both; for a key in both, the right-hand"
        " value is kept.\n\n"
        '**Example:**\n```python\nbase = {"color": "red", "size": 1}\noverrides = {"size": 2}\n'
        "combined = base | overrides  # {'color': 'red', 'size': 2}\n```\n\n"
        "**Tip:** Call `base.update(overrides)` to change the first dict rather than copy it.",
    ),
    "How do I read a file line by line?": (
        "Open the file in a `with` block and iterate over it; each iteration yields one line, newline included.\n\n"
        '**Example:**\n```python\nwith open("data.txt", encoding="utf-8") as f:\n    for line in f:\n'
        "        print(line.rstrip())\n```\n\n"
        "**Tip:** The `with` block closes the file even if an exception is raised.",
        "Iterate over the file object inside a `with` statement: every step gives you the next line, with its"
        " newline.\n\n"
        '**Example:**\n```python\nwith open("notes.txt", encoding="utf-8") as handle:\n    for row in handle:\n'
        "        print(row.rstrip())\n```\n\n"
        "**Tip:** Leaving the `with` statement closes the file, even when an error occurs.",
    ),
    "How do I sort a list of tuples by one field?": (
        "Pass a `key` function to `sorted()`; it returns a new list ordered by that key.\n\n"
        '**Example:**\n```python\npeople = [("ann", 31), ("bob", 25)]\nby_age = sorted(people, key=lambda p: p[1])\n'
        "```\n\n**Tip:** Add `reverse=True` for descending order.",
        "Give `sorted()` a `key` function and it builds a new list ordered by what the function returns.\n\n"
        '**Example:**\n```python\nstaff = [("ann", 31), ("bob", 25)]\n'
        "youngest_first = sorted(staff, key=lambda person: person[1])\n```\n\n"
        "**Tip:** For the largest first, pass `reverse=True`.",
    ),
    "How do I remove duplicates from a list but keep the order?": (
        "Use `dict.fromkeys()` to drop duplicates while keeping the order of first occurrences.\n\n"
        "**Example:**\n```python\nitems = [3, 1, 3, 2, 1]\nunique = list(dict.fromkeys(items))  # [3, 1, 2]\n```\n\n"
        "**Tip:** `set(items)` is shorter but does not keep the order.",
        "`dict.fromkeys()` removes repeats and keeps each value where it first appeared.\n\n"
        "**Example:**\n```python\nnumbers = [3, 1, 3, 2, 1]\ndeduped = list(dict.fromkeys(numbers))  # [3, 1, 2]\n```\n\n"
        "**Tip:** A `set` is shorter to write, but it loses the original order.",
    ),
    "How do I time a function?": (
        "Use `time.perf_counter()` around the call for a quick measurement, or `timeit` for repeated runs.\n\n"
        "**Example:**\n```python\nimport time\nstart = time.perf_counter()\nwork()\n"
        "print(time.perf_counter() - start)\n```\n\n"
        "**Tip:** `python -m timeit` repeats the call and reports the best time.",
        "For a quick timing, read `time.perf_counter()` before and after the call; `timeit` repeats it for you.\n\n"
        "**Example:**\n```python\nimport time\nbegin = time.perf_counter()\nwork()\n"
        "elapsed = time.perf_counter() - begin\n```\n\n"
        "**Tip:** From the shell, `python -m timeit` runs the statement many times and reports the best.",
    ),
}


def contenders(seed: int = 0) -> dict[str, list[str]]:
    """Variant name -> one answer per question: the faithful paraphrase and what breaks it."""
    from harness.evaluation import variants

    questions = list(HOUSE)
    paraphrases = [HOUSE[q][1] for q in questions]
    return {
        "paraphrase": paraphrases,
        "flattened": [variants.flatten(p) for p in paraphrases],  # layout lost
        "other": paraphrases[1:] + paraphrases[:1],  # well laid out, but another question's answer
        "truncated": [variants.first_sentence(p) for p in paraphrases],  # depth lost
        "padded": [variants.pad_with_chatter(p, seed + i) for i, p in enumerate(paraphrases)],  # chatter
        "injected": [variants.injected(variants.poor_answer(q), seed + i) for i, q in enumerate(questions)],
    }


def test_the_composite_ranks_a_faithful_paraphrase_above_every_broken_answer() -> None:
    from harness.evaluation.embedding import load_embedder
    from harness.settings.evaluation import DETERMINISTIC, EvaluationConfig

    references = [reference for reference, _ in HOUSE.values()]
    weights = EvaluationConfig().consistency_weights  # the composite as studies use it by default
    embedder = load_embedder()
    scores = {}
    for name, answers in contenders().items():
        columns = deterministic_columns(DETERMINISTIC, answers, references, embedder)
        scores[name] = {**columns, "consistency": composite(columns, weights)}
    paraphrase = scores["paraphrase"]
    # Genuinely different answers: the paraphrase is no copy of the reference.
    assert all(score < 0.75 for score in paraphrase["rouge_l"]), paraphrase["rouge_l"]

    def ranks_first(scorer: str, worse: str) -> list[int]:
        """The questions where ``scorer`` fails to put the paraphrase above ``worse``."""
        return [i for i, (a, b) in enumerate(zip(paraphrase[scorer], scores[worse][scorer], strict=True)) if a <= b]

    for worse in ("flattened", "other", "truncated", "padded", "injected"):
        assert ranks_first("consistency", worse) == [], worse
    # Each scorer sees the fault it stands for.
    assert ranks_first("structure", "flattened") == []
    assert ranks_first("detail", "truncated") == [] and ranks_first("detail", "padded") == []
    assert ranks_first("rouge_l", "other") == [] and ranks_first("embedding", "other") == []
