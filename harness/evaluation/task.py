"""Task accuracy: is each answer right (its checks pass), per split and against the baseline.

Per-example columns, added to a split's table: ``correct`` (1 right, 0 wrong, empty when the
example has no checks), ``check_score`` (the checks' weighted score), ``failed_checks`` (which
failed and why) and ``group`` (the question an example paraphrases). From them:

* ``task/{split}/accuracy``: the share of checked examples answered right;
* ``task/{split}/group_accuracy``: the share of questions all of whose checked paraphrases were
  answered right (an example without a group is a question of its own);
* ``task/{split}/accuracy_vs_baseline`` and its interval: the paired difference to the untuned
  model on the same prompts. Paraphrases of one question are not independent draws, so when the
  rows carry groups the bootstrap resamples whole groups (:mod:`harness.evaluation.seeds`).

Pure: no I/O beyond what a user's ``python`` check does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.data.chat import Example
from harness.evaluation.asserts import grade
from harness.evaluation.seeds import GROUP_COLUMN, compare_seeded_rows
from harness.metrics import ACCURACY, GROUP_ACCURACY, TASK, MetricName
from harness.settings.asserts import Assertion

CORRECT = "correct"
CHECK_SCORE = "check_score"
FAILED_CHECKS = "failed_checks"
# The per-example column a task score is the mean of: what paired comparisons and promotion read.
PER_EXAMPLE_COLUMN = {ACCURACY: CORRECT}
# Columns of a split's table that are text, not scores.
TEXT_COLUMNS = (FAILED_CHECKS, GROUP_COLUMN)


@dataclass(frozen=True)
class Checked:
    """What decides whether one answer is right: its checks, threshold and question group, and
    ``context``, what a ``python`` check receives as its second argument."""

    checks: tuple[Assertion, ...]
    threshold: float | None
    group: str | None
    context: Mapping[str, Any]


def checked_example(example: Example, extra: Sequence[Assertion] = (), example_id: str | None = None) -> Checked:
    """An example's own checks and then ``extra`` (the config's ``evaluation.asserts`` for its split)."""
    prompt_users = [m["content"] for m in example.prompt if m["role"] == "user"]
    context = {
        "id": example_id or example.source,
        "question": prompt_users[-1] if prompt_users else "",
        "reference": example.reference,
        "messages": [dict(m) for m in example.messages],
        "group": example.group,
    }
    return Checked((*example.checks, *extra), example.threshold, example.group, context)


def task_columns(items: Sequence[Checked], answers: Sequence[str]) -> dict[str, list[Any]]:
    """The task columns of a split's table, one value per answer (empty where nothing is checked)."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} checked examples but {len(answers)} answers")
    columns: dict[str, list[Any]] = {CORRECT: [], CHECK_SCORE: [], FAILED_CHECKS: [], GROUP_COLUMN: []}
    for item, answer in zip(items, answers, strict=True):
        verdict = grade(item.checks, answer, item.context, item.threshold) if item.checks else None
        columns[CORRECT].append(None if verdict is None else float(verdict.correct))
        columns[CHECK_SCORE].append(None if verdict is None else verdict.score)
        columns[FAILED_CHECKS].append(None if verdict is None else verdict.reason)
        columns[GROUP_COLUMN].append(item.group)
    if all(g is None for g in columns[GROUP_COLUMN]):
        del columns[GROUP_COLUMN]  # no groups: the table stays as it was
    if all(v is None for v in columns[CORRECT]):
        return {k: v for k, v in columns.items() if k == GROUP_COLUMN}
    return columns


def _correct(row: Mapping[str, Any]) -> bool | None:
    value = row.get(CORRECT)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def group_outcomes(rows: Sequence[Mapping[str, Any]]) -> list[list[bool]]:
    """Per question (group; an ungrouped row alone), whether each checked answer was right."""
    groups: dict[Any, list[bool]] = {}
    for index, row in enumerate(rows):
        correct = _correct(row)
        if correct is not None:
            group = row.get(GROUP_COLUMN)
            groups.setdefault(("row", index) if group is None else ("group", group), []).append(correct)
    return list(groups.values())


def task_metrics(split: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """``task/{split}/accuracy`` and ``group_accuracy``; nothing when no row is checked."""
    outcomes = [c for row in rows if (c := _correct(row)) is not None]
    if not outcomes:
        return {}
    groups = group_outcomes(rows)
    return {
        MetricName(TASK, split, ACCURACY).key: sum(outcomes) / len(outcomes),
        MetricName(TASK, split, GROUP_ACCURACY).key: sum(all(g) for g in groups) / len(groups),
    }


def task_vs_baseline(
    split: str,
    rows: Sequence[Mapping[str, Any]],
    baseline: Sequence[Mapping[str, Any]],
    *,
    level: float,
    resamples: int,
) -> dict[str, float]:
    """Accuracy minus the baseline's on the same prompts, with its interval (groups resampled whole
    when every compared row names one); nothing when no example is checked in both."""
    diff = compare_seeded_rows([rows], [baseline], CORRECT, level=level, resamples=resamples)
    if diff is None:
        return {}
    return diff.as_metrics(MetricName(TASK, split, ACCURACY).vs_baseline().key)
