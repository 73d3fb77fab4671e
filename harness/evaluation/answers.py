"""Score answers produced anywhere with a study's own scorers (``harness score``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.chat import evaluation_problems, read_numbered
from harness.evaluation.checked import check_split
from harness.evaluation.scoring import SplitScores, score_split
from harness.evaluation.stability import composite_similarity
from harness.evaluation.task import Checked
from harness.metrics import ANSWERS
from harness.settings.asserts import parse_checks
from harness.settings.evaluation import EvaluationConfig

REQUIRED = ("question", "reference", "answer")


def record_problems(record: Any) -> list[str]:
    """What is wrong with one line of an answers file (empty when nothing)."""
    if not isinstance(record, dict):
        return ["each line must be a JSON object with question, reference and answer"]
    problems = []
    for key in REQUIRED:
        if key not in record:
            problems.append(f'missing field "{key}"')
        elif not isinstance(record[key], str):
            problems.append(f'field "{key}" must be a string, got {type(record[key]).__name__}')
        elif key != "answer" and not record[key].strip():
            problems.append(f'field "{key}" is empty')
    if "id" in record and not isinstance(record["id"], str | int):
        problems.append('field "id" must be a string or an integer')
    return problems + evaluation_problems(record)  # "assert", "threshold" and "group", as on chat rows


@dataclass(frozen=True)
class AnswerRecord:
    id: str
    question: str
    reference: str
    answer: str
    checked: Checked | None = None  # its "assert" checks, threshold and group, when it has any


def _checked(record: dict[str, Any], record_id: str) -> Checked | None:
    if not any(key in record for key in ("assert", "group")):
        return None
    group = None if record.get("group") is None else str(record["group"])
    # What a python check gets in a study (checked_example), so one check works in both places.
    messages = [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": record["reference"]}]
    context = {"id": record_id, "question": record["question"], "reference": record["reference"]}
    context |= {"messages": messages, "group": group}
    return Checked(parse_checks(record.get("assert", []))[0], record.get("threshold"), group, context)


def load_answers(path: Path) -> list[AnswerRecord]:
    """Every line validated first: a DataError lists each ``file:line: problem``; nothing partial."""
    # The training data's reader: a BOM is accepted and only "\n" ends a line, so ids agree with editors.
    records = read_numbered(path, record_problems)
    return [
        AnswerRecord(
            str(r.get("id", line)), r["question"], r["reference"], r["answer"], _checked(r, str(r.get("id", line)))
        )
        for line, r in records
    ]


@contextlib.contextmanager
def _scorer_resources(settings: EvaluationConfig, scorers: Sequence[str]) -> Iterator[tuple[Any, Any]]:
    embedder = judge = None
    if "embedding" in scorers:
        from harness.evaluation.embedding import load_embedder

        embedder = load_embedder()
    with contextlib.ExitStack() as stack:
        if "judge" in scorers:
            from harness.evaluation.judge_session import open_judge

            judge = stack.enter_context(open_judge(settings.judge))
        yield embedder, judge


def score_answers(settings: EvaluationConfig, records: Sequence[AnswerRecord], scorers: Sequence[str]) -> SplitScores:
    """The study's scorers (and composite, over those that ran) on ``records``; where records carry
    checks, whether each answer is right (``correct``, ``failed_checks``) and the accuracy."""
    weights = {s: settings.consistency_weights[s] for s in settings.composite_scorers if s in scorers}
    with _scorer_resources(settings, scorers) as (embedder, judge):
        scores = score_split(
            ANSWERS,
            [r.question for r in records],
            [r.reference for r in records],
            [r.answer for r in records],
            scorers=scorers,
            embedder=embedder,
            judge=judge,
            weights=weights,
            ids=[r.id for r in records],
        )
        if not any(r.checked is not None for r in records):
            return scores
        unchecked = Checked((), None, None, {})
        items = [r.checked or unchecked for r in records]
        similarity = composite_similarity([s for s in settings.composite_scorers if s in scorers], weights, embedder)
        rows, metrics = check_split(ANSWERS, items, [r.answer for r in records], scores.rows, similarity=similarity)
    return SplitScores(scores.split, scores.metrics | metrics, rows)


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write to a temp file and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(path)
