"""``harness data pairs``: DPO preference pairs from a chat SFT file and a model's own answers.

For each example of the study's training file the reference answer is preferred and the model's
greedy answer to the same prompt is not: the pairs teach the model to move from what it says now
towards what the data says. The model is the study's base model, or a tracked fine-tune
(``run:RUN_ID``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``; see :mod:`harness.lifecycle.lineage`),
typically the SFT model the DPO study will start from. It answers exactly as trials are evaluated:
the study's system prompt added, batched greedy generation, an answer budget sized by the longest
reference (``evaluation.max_new_tokens`` and ``length_margin``).

A pair whose answer equals the reference teaches nothing and is skipped, as is an example whose
prompt does not end with the user's turn (a DPO input must). The prompt is written as the source
file has it (the study adds its system prompt when it trains). The output is OpenAI's DPO JSONL,
checked with the validator ``harness data check`` uses before it replaces the target file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import models
from harness.config import StudyConfig
from harness.data.chat import DataError, Example, load_jsonl, with_system_prompt
from harness.data.check import read_checked
from harness.data.preference import detect_format, make_record
from harness.device import use_bf16
from harness.evaluation.evaluator import token_budget
from harness.lifecycle.lineage import resolve_base, resolve_spec

BASE = "base"
CHUNK_BATCHES = 4  # batches per generate() call: one progress step each, one generation copy each


@dataclass(frozen=True)
class PairsResult:
    out: Path
    written: int
    same: int  # skipped: the model already answers with the reference (or says nothing)
    unusable: int  # skipped: the prompt does not end with the user's turn


def usable(example: Example) -> bool:
    prompt = example.prompt
    return bool(prompt) and prompt[-1]["role"] == "user"


def build_records(examples: Sequence[Example], answers: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """Pure: (DPO records, pairs skipped because the answer is the reference) for usable examples."""
    records, same = [], 0
    for example, answer in zip(examples, answers, strict=True):
        if answer.strip() == example.reference.strip() or not answer.strip():
            same += 1  # an empty answer cannot be a DPO output either
            continue
        records.append(make_record(example.prompt, example.reference, answer))
    return records, same


def model_dir(config: StudyConfig, spec: str) -> str:
    """What to load for ``spec``: the study's (resolved) base model, or a tracked model's local copy."""
    if spec == BASE:
        return resolve_base(config).config.base_model
    if not models.is_tracked(spec):
        raise DataError([f"--model {spec!r}: expected base, run:RUN_ID, models:/NAME@ALIAS or models:/NAME/VERSION"])
    return str(resolve_spec(spec, config.mlflow.tracking_uri)[0])


def answer_all(config: StudyConfig, model_spec: str, examples: Sequence[Example], progress: Any = None) -> list[str]:
    """Greedy answers to every example's prompt (system prompt added), in order, with a progress bar."""
    from harness.generation import generate

    settings = config.evaluation
    model, tokenizer = models.load_base(model_spec), models.load_tokenizer(model_spec)
    budget = token_budget([e.reference for e in examples], settings, lambda t: models.count_tokens(model_spec, t))
    precision = config.precision
    prompts = [e.prompt for e in with_system_prompt(examples, config.system_prompt)]
    chunk = settings.batch_size * CHUNK_BATCHES
    task = progress.add_task("answering", total=len(prompts)) if progress is not None else None
    answers: list[str] = []
    for start in range(0, len(prompts), chunk):
        part = prompts[start : start + chunk]
        answers += generate(
            model, tokenizer, part, max_new_tokens=budget, batch_size=settings.batch_size, bf16=use_bf16(precision)
        )
        if task is not None:
            progress.update(task, completed=len(answers))
    return answers


def write_records(records: Sequence[dict[str, Any]], out: Path) -> None:
    """Validated like any DPO file, then renamed into place: a failed run leaves no half file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp")
    staging.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    try:
        read_checked(staging)
    except DataError:
        staging.unlink()
        raise
    staging.replace(out)


def make_pairs(
    config: StudyConfig, out: Path, model: str = BASE, limit: int | None = None, progress: Any = None
) -> PairsResult:
    """Pairs for the study's training file (its first ``limit`` examples), written to ``out``."""
    source = config.data.train_file
    if out.exists() and out.resolve() == source.resolve():
        raise DataError([f"{out} is the training file; write the pairs elsewhere"])
    if detect_format(source) == "dpo":
        raise DataError([f"{source}: already preference (DPO) JSONL; pairs are made from a chat (SFT) study's data"])
    examples = load_jsonl(source)[:limit]
    chosen = [e for e in examples if usable(e)]
    answers = answer_all(config, model_dir(config, model), chosen, progress)
    records, same = build_records(chosen, answers)
    if not records:
        raise DataError([f"{source}: no pair to write (every answer equals its reference)"])
    write_records(records, out)
    return PairsResult(out, len(records), same, len(examples) - len(chosen))
