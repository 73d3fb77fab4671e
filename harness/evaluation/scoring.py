"""Score one split (train or heldout): per-example rows and mean metrics for MLflow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.evaluation.embedding import Embedder
from harness.evaluation.judge import Judge, JudgeItem, JudgeScore
from harness.evaluation.scorers import count_missing, mean_ignoring_missing, rouge_l


@dataclass
class SplitScores:
    """``metrics``: consistency/{split}/{scorer} means; ``rows``: one dict per example."""

    split: str
    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def score_split(
    split: str,
    questions: Sequence[str],
    references: Sequence[str],
    answers: Sequence[str],
    *,
    scorers: Iterable[str],
    embedder: Embedder | None = None,
    judge: Judge | None = None,
) -> SplitScores:
    """Run the chosen scorers ("embedding", "rouge_l", "judge") over aligned lists."""
    if not len(questions) == len(references) == len(answers):
        raise ValueError("questions, references and answers differ in length")
    scorers = tuple(scorers)
    columns: dict[str, list[Any]] = {}
    if "embedding" in scorers:
        if embedder is None:
            raise ValueError("the embedding scorer needs an embedder")
        columns["embedding"] = embedder.similarities(answers, references)
    if "rouge_l" in scorers:
        columns["rouge_l"] = rouge_l(answers, references)
    if "judge" in scorers:
        if judge is None:
            raise ValueError("the judge scorer needs a judge")
        items = [JudgeItem(*triple) for triple in zip(questions, references, answers, strict=True)]
        columns.update(_judge_columns(judge.score_many(items), judge.rubric.keys))
    result = SplitScores(split)
    result.metrics = _metrics(split, columns)
    result.rows = _rows(questions, references, answers, columns)
    return result


def _judge_columns(scores: list[JudgeScore], keys: Sequence[str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {"judge": [s.overall for s in scores]}
    for key in keys:
        columns[f"judge_{key}"] = [s.criteria.get(key) for s in scores]
    columns["judge_reasons"] = [s.reasons for s in scores]
    columns["judge_error"] = [s.error for s in scores]
    return columns


def _metrics(split: str, columns: dict[str, list[Any]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, values in columns.items():
        if name in ("judge_reasons", "judge_error"):
            continue
        mean = mean_ignoring_missing(values)
        if mean is not None:  # an all-missing scorer logs nothing rather than a fake 0
            metrics[f"consistency/{split}/{name}"] = mean
    if "judge" in columns:
        metrics[f"consistency/{split}/judge_missing"] = float(count_missing(columns["judge"]))
    return metrics


def _rows(
    questions: Sequence[str],
    references: Sequence[str],
    answers: Sequence[str],
    columns: dict[str, list[Any]],
) -> list[dict[str, Any]]:
    rows = []
    for i, (question, reference, answer) in enumerate(
        zip(questions, references, answers, strict=True)
    ):
        row = {"question": question, "reference": reference, "answer": answer}
        row.update({name: values[i] for name, values in columns.items()})
        rows.append(row)
    return rows
