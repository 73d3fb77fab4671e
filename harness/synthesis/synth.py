"""``harness data synth``: personas -> questions -> answers in the house style -> filters -> chat JSONL.

Every (persona, topic, n) is an item with a deterministic id: a digest of everything that decides
its text (persona, topic, n, prompts, endpoint identity, spec seed). Its sampling seed comes from
that id, so a rerun asks for the same thing. Finished items are appended to a state file beside
the output (``OUT.state.jsonl``) as they arrive; a rerun reads it and requests only the items it
lacks, so an interrupted or partly failed run resumes without paying twice. Filters are pure and
re-applied on every run over all items (a stricter filter needs no new requests).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.config import ConfigError
from harness.endpoints.answerer import Clients, Messages, run_bounded
from harness.settings.synthesis import FilterConfig, Persona, SynthSpec
from harness.synthesis.filters import FILTERS, clean_question, near_duplicates, reject_reason

Embed = Callable[[list[str]], Any]  # texts -> normalised row vectors
Tick = Callable[[int, int], None]  # (finished, total) requests of this run


class SpecError(ConfigError):
    """A synthesis spec that cannot be used; the message names the file and the field."""


def load_spec(path: Path) -> SynthSpec:
    """Read and validate a spec; SpecError names ``file`` and each bad field's dotted path."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return SynthSpec.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        lines = [f"{path}: invalid synthesis spec"]
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(top level)"
            problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            lines.append(f"  {where}: {problem.removeprefix('Value error, ')}")
        raise SpecError("\n".join(lines)) from None


@dataclass(frozen=True)
class Item:
    id: str
    persona: Persona
    topic: str
    index: int

    @property
    def seed(self) -> int:
        """The item's sampling seed: from its id, which already holds the spec's seed."""
        return int(self.id[:8], 16) & 0x7FFFFFFF


def item_id(spec: SynthSpec, persona: Persona, topic: str, index: int) -> str:
    decides = {
        "persona": [persona.name, persona.description],
        "topic": topic,
        "index": index,
        "question_prompt": spec.question_prompt,
        "system_prompt": spec.system_prompt,
        "answer_instructions": spec.answer_instructions,
        "answer_examples": [[e.question, e.answer] for e in spec.answer_examples],
        "endpoint": spec.endpoint.identity(),
        "seed": spec.seed,
    }
    return hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:16]


def plan_items(spec: SynthSpec) -> list[Item]:
    """Every item, in output order: persona by persona, topic by topic."""
    return [
        Item(item_id(spec, persona, topic, n), persona, topic, n)
        for persona in spec.personas
        for topic in persona.topics
        for n in range(spec.questions_per_topic)
    ]


def question_messages(spec: SynthSpec, item: Item) -> Messages:
    prompt = spec.question_prompt.format(name=item.persona.name, description=item.persona.description, topic=item.topic)
    return [{"role": "user", "content": prompt}]


def answer_messages(spec: SynthSpec, question: str) -> Messages:
    system = "\n\n".join(part for part in (spec.system_prompt, spec.answer_instructions.strip()) if part)
    shots = [
        {"role": role, "content": text}
        for example in spec.answer_examples
        for role, text in (("user", example.question), ("assistant", example.answer))
    ]
    return [{"role": "system", "content": system}, *shots, {"role": "user", "content": question}]


def generate(spec: SynthSpec, clients: Clients, item: Item) -> dict[str, Any]:
    """One item: a question, then (if there is one) its answer. Raises what the endpoint raises."""
    raw = clients.complete(question_messages(spec, item), item.seed)
    question = clean_question(raw.text)
    answer = clients.complete(answer_messages(spec, question), item.seed) if question else None
    return {
        "id": item.id,
        "persona": item.persona.name,
        "topic": item.topic,
        "index": item.index,
        "raw_question": raw.text,
        "question": question,
        "answer": answer.text if answer else None,
        "truncated": bool(answer and answer.truncated),
    }


def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state.jsonl")


class StateFile:
    """Append-only JSONL of finished items; a torn last line (a kill mid-write) is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "id" in record:
                records[record["id"]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def apply_filters(
    records: Sequence[dict[str, Any]], filters: FilterConfig, embed: Embed | None
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Records that pass every filter, in the given order, and the count rejected by each filter."""
    rejected: Counter[str] = Counter({name: 0 for name in FILTERS})
    passed = []
    for record in records:
        reason = reject_reason(record["question"], record["answer"], filters, record.get("truncated", False))
        if reason is None:
            passed.append(record)
        else:
            rejected[reason] += 1
    if filters.near_duplicate_threshold is None or embed is None or len(passed) < 2:
        return passed, rejected
    duplicate = near_duplicates(embed([r["question"] for r in passed]), filters.near_duplicate_threshold)
    rejected["near_duplicate"] += sum(duplicate)
    return [r for r, dup in zip(passed, duplicate, strict=True) if not dup], rejected


def chat_record(system_prompt: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": record["question"]},
            {"role": "assistant", "content": record["answer"]},
        ]
    }


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Temp file then rename: a reader never sees half a file. The temp name is the writer's own:
    workers of one study may build the same cached set at once (same content, last rename wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


@dataclass
class SynthResult:
    items: int = 0  # planned
    reused: int = 0  # already in the state file: no request made
    generated: int = 0  # finished in this run
    failed: list[str] = field(default_factory=list)  # errors of items left for a rerun
    rejected: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)  # accepted, in output order

    @property
    def accepted(self) -> int:
        return len(self.records)

    def counts(self) -> dict[str, int]:
        return {
            "items": self.items,
            "reused": self.reused,
            "generated": self.generated,
            "failed": len(self.failed),
            "accepted": self.accepted,
            **{f"rejected/{name}": self.rejected[name] for name in FILTERS},
        }


def synthesize(
    spec: SynthSpec, out: Path, clients: Clients, embed: Embed | None, tick: Tick = lambda done, total: None
) -> SynthResult:
    """Generate what the state file lacks, filter everything, write ``out`` (chat JSONL).
    ``tick(done, total)`` follows the requests of this run (0 when everything is reused)."""
    items = plan_items(spec)
    state = StateFile(state_path(out))
    done = {k: v for k, v in state.load().items() if k in {i.id for i in items}}
    result = SynthResult(items=len(items), reused=len(done))
    todo = [item for item in items if item.id not in done]
    tick(0, len(todo))

    def finished(item: Item, outcome: dict[str, Any] | BaseException) -> None:
        if isinstance(outcome, BaseException):
            result.failed.append(f"{item.persona.name} / {item.topic} #{item.index}: {outcome}")
        else:
            state.append(outcome)
            done[item.id] = outcome
            result.generated += 1
        tick(result.generated + len(result.failed), len(todo))

    run_bounded(todo, lambda item: generate(spec, clients, item), spec.endpoint.concurrency, finished)
    ordered = [done[item.id] for item in items if item.id in done]
    accepted, result.rejected = apply_filters(ordered, spec.filters, embed)
    result.records = accepted
    write_jsonl(out, [chat_record(spec.system_prompt, r) for r in accepted])
    return result
