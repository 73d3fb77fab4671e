"""Score one split (train or heldout): per-example rows and mean metrics for MLflow."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.evaluation.embedding import Embedder
from harness.evaluation.judge import Judge, JudgeItem, JudgeScore
from harness.evaluation.scorers import count_missing, mean_ignoring_missing, rouge_l
from harness.metrics import CONSISTENCY, JUDGE, JUDGE_MISSING, MetricName, judge_criterion
from harness.settings.evaluation import COMPOSITE

# Columns of a split's table that are text, not scores.
TEXT_COLUMNS = ("id", "question", "reference", "answer", "judge_reasons", "judge_error")


@dataclass
class SplitScores:
    """``metrics``: the split's mean per scorer (``MetricName``); ``rows``: one dict per example."""

    split: str
    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def composite(columns: Mapping[str, Sequence[float | None]], weights: Mapping[str, float]) -> list[float | None]:
    """Pure: per example, the weighted mean of the weighted columns present there.

    Weights are renormalised over the scorers that have a value for that example, so one missing
    score does not drag the composite to 0. Cosines below 0 count as 0: the composite stays in [0, 1].
    """
    names = [n for n, w in weights.items() if w > 0 and n in columns]
    if not names:
        return []
    size = len(columns[names[0]])
    values: list[float | None] = []
    for i in range(size):
        present = [(weights[n], columns[n][i]) for n in names if _present(columns[n][i])]
        total = math.fsum(w for w, _ in present)
        values.append(math.fsum(w * min(1.0, max(0.0, float(v))) for w, v in present) / total if total else None)
    return values


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def score_split(
    split: str,
    questions: Sequence[str],
    references: Sequence[str],
    answers: Sequence[str],
    *,
    scorers: Iterable[str],
    embedder: Embedder | None = None,
    judge: Judge | None = None,
    weights: Mapping[str, float] | None = None,
    ids: Sequence[str] | None = None,
) -> SplitScores:
    """Run the chosen scorers over aligned lists; ``weights`` adds the ``consistency`` composite."""
    if not len(questions) == len(references) == len(answers):
        raise ValueError("questions, references and answers differ in length")
    columns = deterministic_columns(tuple(scorers), answers, references, embedder)
    if weights:
        columns[COMPOSITE] = composite(columns, weights)
    if JUDGE in tuple(scorers):
        if judge is None:
            raise ValueError("the judge scorer needs a judge")
        items = [JudgeItem(*triple) for triple in zip(questions, references, answers, strict=True)]
        columns.update(_judge_columns(judge.score_many(items), judge.rubric.keys))
    result = SplitScores(split)
    result.metrics = _metrics(split, columns)
    result.rows = _rows(questions, references, answers, columns, ids)
    return result


def deterministic_columns(
    scorers: Sequence[str], answers: Sequence[str], references: Sequence[str], embedder: Embedder | None
) -> dict[str, list[Any]]:
    """The scorers that read only the two texts, in a fixed order."""
    from harness.evaluation import layout

    columns: dict[str, list[Any]] = {}
    if "embedding" in scorers:
        if embedder is None:
            raise ValueError("the embedding scorer needs an embedder")
        columns["embedding"] = embedder.similarities(answers, references)
    if "rouge_l" in scorers:
        columns["rouge_l"] = rouge_l(answers, references)
    if "structure" in scorers:
        columns["structure"] = layout.structure(answers, references)
    if "detail" in scorers:
        columns["detail"] = layout.detail(answers, references)
    return columns


def _judge_columns(scores: list[JudgeScore], keys: Sequence[str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {JUDGE: [s.overall for s in scores]}
    for key in keys:
        columns[judge_criterion(key)] = [s.criteria.get(key) for s in scores]
    columns["judge_reasons"] = [s.reasons for s in scores]
    columns["judge_error"] = [s.error for s in scores]
    return columns


def _metrics(split: str, columns: dict[str, list[Any]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, values in columns.items():
        if name in TEXT_COLUMNS:
            continue
        mean = mean_ignoring_missing(values)
        if mean is not None:  # an all-missing scorer logs nothing rather than a fake 0
            metrics[MetricName(CONSISTENCY, split, name).key] = mean
    if JUDGE in columns:
        metrics[MetricName(CONSISTENCY, split, JUDGE_MISSING).key] = float(count_missing(columns[JUDGE]))
    return metrics


def _rows(
    questions: Sequence[str],
    references: Sequence[str],
    answers: Sequence[str],
    columns: dict[str, list[Any]],
    ids: Sequence[str] | None,
) -> list[dict[str, Any]]:
    rows = []
    for i, (question, reference, answer) in enumerate(zip(questions, references, answers, strict=True)):
        row: dict[str, Any] = {"id": ids[i]} if ids is not None else {}
        row |= {"question": question, "reference": reference, "answer": answer}
        row.update({name: values[i] for name, values in columns.items()})
        rows.append(row)
    return rows
