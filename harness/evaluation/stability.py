"""Answer stability: does the model answer one question alike however it is asked, and each time?

Over the paraphrases of one question (the rows of one ``group``), per split:

* ``stability/{split}/correct_agreement``: the share of questions whose checked answers are all
  right or all wrong (a model that knows a fact knows it in every wording);
* ``stability/{split}/answer_agreement``: the mean pairwise similarity of the answers to one
  question's paraphrases, with the study's composite scorer, averaged over questions.

Over answers sampled again for one prompt (``evaluation.stability``):

* ``stability/{split}/sampled_agreement``: the share of prompts whose sampled answers are all
  right or all wrong (TARa@N in the LLM-stability literature);
* ``stability/{split}/sampled_answer_agreement``: their mean pairwise similarity.

Only questions with at least two answers count. Pure, given the similarity function.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.evaluation.asserts import grade
from harness.evaluation.scoring import composite, deterministic_columns
from harness.evaluation.seeds import GROUP_COLUMN
from harness.evaluation.task import Checked, group_outcomes
from harness.metrics import (
    ANSWER_AGREEMENT,
    CORRECT_AGREEMENT,
    SAMPLED_AGREEMENT,
    SAMPLED_ANSWER_AGREEMENT,
    STABILITY,
    MetricName,
)

# Similarity of aligned answers: one value in [0, 1] per pair (None where it cannot be scored).
Similarity = Callable[[Sequence[str], Sequence[str]], Sequence[float | None]]
# A per-example column: the share of the prompt's sampled answers that were right.
SAMPLED_CORRECT = "sampled_correct"


def composite_similarity(
    scorers: Sequence[str], weights: Mapping[str, float], embedder: Any = None
) -> Similarity | None:
    """The study's composite consistency scorer, used between two answers; None without one."""
    if not weights:
        return None

    def similarity(a: Sequence[str], b: Sequence[str]) -> Sequence[float | None]:
        return composite(deterministic_columns(scorers, list(a), list(b), embedder), weights)

    return similarity


def agreement(outcomes: Sequence[Sequence[bool]]) -> float | None:
    """The share of sets (two answers or more) that are all right or all wrong; None without one."""
    sets = [o for o in outcomes if len(o) >= 2]
    return sum(all(o) or not any(o) for o in sets) / len(sets) if sets else None


def mean_pairwise_similarity(answer_sets: Sequence[Sequence[str]], similarity: Similarity) -> float | None:
    """Per set (two answers or more), the mean similarity of its pairs, each scored both ways
    (a scorer may weigh answer and reference differently); then the mean over sets."""
    owners, left, right = [], [], []
    for index, answers in enumerate(answer_sets):
        for i, j in itertools.permutations(range(len(answers)), 2):
            owners.append(index)
            left.append(answers[i])
            right.append(answers[j])
    if not owners:
        return None
    per_set: dict[int, list[float]] = {}
    for owner, value in zip(owners, similarity(left, right), strict=True):
        if value is not None and not math.isnan(value):
            per_set.setdefault(owner, []).append(value)
    means = [math.fsum(values) / len(values) for values in per_set.values()]
    return math.fsum(means) / len(means) if means else None


def group_answers(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The answers of each group, in table order (rows without a group are left out)."""
    groups: dict[Any, list[str]] = {}
    for row in rows:
        if row.get(GROUP_COLUMN) is not None:
            groups.setdefault(row[GROUP_COLUMN], []).append(str(row.get("answer", "")))
    return list(groups.values())


def _named(split: str, values: Mapping[str, float | None]) -> dict[str, float]:
    return {MetricName(STABILITY, split, name).key: v for name, v in values.items() if v is not None}


def group_stability(split: str, rows: Sequence[Mapping[str, Any]], similarity: Similarity | None) -> dict[str, float]:
    """``correct_agreement`` and ``answer_agreement`` over the split's groups of paraphrases."""
    answers = group_answers(rows)
    return _named(
        split,
        {
            CORRECT_AGREEMENT: agreement(group_outcomes(rows)),
            ANSWER_AGREEMENT: None if similarity is None else mean_pairwise_similarity(answers, similarity),
        },
    )


def sampled_stability(
    split: str, items: Sequence[Checked], samples: Sequence[Sequence[str]], similarity: Similarity | None
) -> tuple[dict[str, float], list[float | None]]:
    """``sampled_agreement`` and ``sampled_answer_agreement`` of each prompt's sampled answers, and
    per prompt the share of them that were right (None for a prompt without checks)."""
    if len(items) != len(samples):
        raise ValueError(f"{len(items)} prompts but {len(samples)} sets of sampled answers")
    outcomes: list[list[bool]] = []
    shares: list[float | None] = []
    for item, answers in zip(items, samples, strict=True):
        if not item.checks:
            shares.append(None)
            continue
        right = [grade(item.checks, a, item.context, item.threshold).correct for a in answers]
        outcomes.append(right)
        shares.append(sum(right) / len(right) if right else None)
    values = {
        SAMPLED_AGREEMENT: agreement(outcomes),
        SAMPLED_ANSWER_AGREEMENT: None if similarity is None else mean_pairwise_similarity(samples, similarity),
    }
    return _named(split, values), shares
