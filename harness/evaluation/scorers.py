"""Pure scoring helpers: ROUGE-L, cosine similarity and means that skip missing values."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any


@functools.cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    # Stemming makes "returns"/"return" match, closer to how a reader judges overlap.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 of each answer against its reference, in [0, 1]."""
    _same_length(answers, references)
    scorer = _rouge_scorer()
    return [
        float(scorer.score(reference, answer)["rougeL"].fmeasure)
        for answer, reference in zip(answers, references, strict=True)
    ]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors; 0.0 when either is all zeros."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} != {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


def mean_ignoring_missing(values: Sequence[float | None]) -> float | None:
    """Mean of the present values (None and NaN skipped); None when nothing is left."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    return math.fsum(present) / len(present) if present else None


def count_missing(values: Sequence[float | None]) -> int:
    return sum(1 for v in values if v is None or math.isnan(v))


def _same_length(answers: Sequence[str], references: Sequence[str]) -> None:
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
