"""The task and stability part of a split's evaluation: which answers are right, and how alike.

The consistency scores say how close an answer is to the reference; these say whether it is right
(:mod:`harness.evaluation.task`) and whether the model answers one question alike in every
wording and every draw (:mod:`harness.evaluation.stability`). One call per split adds their
columns to the split's table and returns their metrics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from harness.data.chat import Example
from harness.data.check import groups_only_in
from harness.evaluation.stability import SAMPLED_CORRECT, Similarity, group_stability, sampled_stability
from harness.evaluation.task import Checked, checked_example, task_columns, task_metrics, task_vs_baseline
from harness.metrics import TASK, try_parse
from harness.settings.evaluation import EvaluationConfig


def split_checks(
    settings: EvaluationConfig, split: str, examples: Sequence[Example], ids: Sequence[str]
) -> list[Checked]:
    """Each example's checks, then the config's ``evaluation.asserts`` for the split."""
    extra = settings.asserts.get(split, ())  # type: ignore[call-overload]
    return [checked_example(e, extra, i) for e, i in zip(examples, ids, strict=True)]


def checks_digest(items: Sequence[Checked]) -> str | None:
    """What decides correctness in a split (checks, thresholds, groups); None when nothing does, so
    an evaluation without checks keeps the digest it had before checks existed."""
    described = [
        {"checks": [c.model_dump(mode="json") for c in i.checks], "threshold": i.threshold, "group": i.group}
        for i in items
    ]
    if not any(d["checks"] or d["group"] is not None for d in described):
        return None
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def check_split(
    split: str,
    items: Sequence[Checked],
    answers: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    similarity: Similarity | None,
    samples: Sequence[Sequence[str]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The split's rows with the task columns (and ``sampled_correct``), and the task and stability
    metrics: accuracy, group accuracy, agreement over paraphrases and, given ``samples``, over draws."""
    columns = task_columns(items, answers)
    if samples is not None:
        sampled, shares = sampled_stability(split, items, samples, similarity)
        if any(s is not None for s in shares):
            columns[SAMPLED_CORRECT] = shares
    out = [dict(row) | {name: values[i] for name, values in columns.items()} for i, row in enumerate(rows)]
    metrics = task_metrics(split, out) | group_stability(split, out, similarity)
    return out, metrics | (sampled if samples is not None else {})


def checked_vs_baseline(
    split: str, rows: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]], settings: EvaluationConfig
) -> dict[str, float]:
    """Accuracy minus the baseline's, with its interval (question groups resampled whole)."""
    return task_vs_baseline(
        split, rows, baseline, level=settings.confidence_level, resamples=settings.bootstrap_resamples
    )


def unchecked_objective(
    inputs: Sequence[str], settings: EvaluationConfig, splits: Mapping[str, Sequence[Example]]
) -> str | None:
    """Why an objective on task accuracy cannot be measured: a split it reads has no checked example."""
    for name in inputs:
        parsed = try_parse(name)
        if parsed is None or parsed.family != TASK:
            continue
        if not settings.asserts.get(parsed.split) and not any(e.checks for e in splits.get(parsed.split, ())):  # type: ignore[call-overload]
            return (
                f"the objective reads {name}, but no {parsed.split} example has assert checks: add "
                f'"assert" to the data rows or evaluation.asserts.{parsed.split} to the config'
            )
    return None


def one_sided_groups(train: Sequence[Example], heldout: Sequence[Example]) -> list[str]:
    """Groups only one side has: a held-out wording of a question never trained on measures
    something else than recall of a trained fact (and a trained one never asked, nothing)."""
    trained = {e.group for e in train if e.group is not None}
    asked = {e.group for e in heldout if e.group is not None}
    found = groups_only_in({"training": trained, "held-out": asked})
    return [f"{len(g)} group(s) only in the {side} split: {', '.join(g[:5])}" for side, g in found.items() if g]
