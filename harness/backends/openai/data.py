"""Training data for remote fine-tuning: chat (supervised) or preference (DPO) JSONL.

Chat records are checked by ``harness.data.chat.load_jsonl``; preference records
(``input`` / ``preferred_output`` / ``non_preferred_output``) get the same kind of
``file:line`` problems here. What is uploaded is exactly what was checked and counted.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.data.chat import ROLES, DataError, load_jsonl, read_records, with_system_prompt

Kind = Literal["chat", "dpo"]
DPO_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
# Which data kind each remote method trains on.
METHOD_KIND: dict[str, Kind] = {"supervised": "chat", "dpo": "dpo"}


@dataclass(frozen=True)
class RemoteDataset:
    """The records to upload (one JSON object each), after system prompt and split."""

    kind: Kind
    train: tuple[dict[str, Any], ...]
    validation: tuple[dict[str, Any], ...]

    def jsonl(self, which: Literal["train", "validation"]) -> bytes:
        records = self.train if which == "train" else self.validation
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()

    @property
    def digest(self) -> str:
        """Content hash of both upload files: same bytes, same digest, same uploaded files."""
        h = hashlib.sha256(self.jsonl("train"))
        h.update(b"\0")
        h.update(self.jsonl("validation"))
        return h.hexdigest()[:16]


def detect_kind(path: Path) -> Kind:
    """Preference data when the first record has an ``input`` key, chat otherwise."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        return "chat"  # load_jsonl reports the bad line with its number
                    return "dpo" if isinstance(record, dict) and "input" in record else "chat"
    except (OSError, UnicodeDecodeError):
        pass
    return "chat"


def _output_problems(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) != 1:
        return [f"{key}: must be a list holding exactly one assistant message"]
    message = value[0]
    if not isinstance(message, dict):
        return [f"{key}[0]: must be an object"]
    problems = [
        f"{key}[0]: unrecognised key {k!r}" for k in sorted(set(message) - {"role", "content"})
    ]
    if message.get("role") != "assistant":
        problems.append(f"{key}[0].role: must be 'assistant', got {message.get('role')!r}")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        problems.append(f"{key}[0].content: missing or empty content")
    return problems


def _input_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["input: must be an object with a 'messages' list"]
    problems = [f"input: unrecognised key {k!r}" for k in sorted(set(value) - INPUT_KEYS)]
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "input.messages: missing or empty list"]
    for i, message in enumerate(messages):
        where = f"input.messages[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{where}: must be an object")
            continue
        if message.get("role") not in ROLES:
            problems.append(f"{where}.role: unknown role {message.get('role')!r}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"{where}.content: missing or empty content")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") != "user":
        problems.append("input.messages: the last message must be the user's turn")
    return problems


def preference_problems(record: Any) -> list[str]:
    """Everything wrong with one DPO record (empty when it is usable)."""
    if not isinstance(record, dict):
        return [f"each line must be a JSON object, got {type(record).__name__}"]
    problems = [f"unrecognised key {k!r}" for k in sorted(set(record) - DPO_KEYS)]
    problems += [f"missing {k!r}" for k in sorted(DPO_KEYS - set(record))]
    if "input" in record:
        problems += _input_problems(record["input"])
    for key in ("preferred_output", "non_preferred_output"):
        if key in record:
            problems += _output_problems(key, record[key])
    if not problems and record["preferred_output"] == record["non_preferred_output"]:
        problems.append("preferred_output and non_preferred_output are identical")
    return problems


def load_preferences(path: Path) -> list[dict[str, Any]]:
    """Parse and check every DPO line; raise DataError listing all problems with file:line."""
    return [record for _, record in read_records(path, preference_problems)]


def _with_system(record: dict[str, Any], system_prompt: str | None) -> dict[str, Any]:
    messages = record["input"]["messages"]
    if not system_prompt or messages[0].get("role") == "system":
        return record
    system = {"role": "system", "content": system_prompt}
    return {**record, "input": {**record["input"], "messages": [system, *messages]}}


def _load_kind(path: Path, kind: Kind, system_prompt: str | None) -> list[dict[str, Any]]:
    if kind == "dpo":
        return [_with_system(r, system_prompt) for r in load_preferences(path)]
    examples = with_system_prompt(load_jsonl(path), system_prompt)
    return [{"messages": [dict(m) for m in e.messages]} for e in examples]


def _split_records(
    records: Sequence[dict[str, Any]], ratio: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if len(records) < 2:
        raise DataError([f"a validation split of {ratio} needs at least 2 examples"])
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    n_validation = max(1, round(len(shuffled) * ratio))
    if n_validation >= len(shuffled):
        raise DataError([f"a validation split of {ratio} leaves no training examples"])
    return shuffled[n_validation:], shuffled[:n_validation]


def load_dataset(
    train_file: Path,
    validation_file: Path | None,
    validation_split: float | None,
    shuffle_seed: int,
    system_prompt: str | None,
) -> RemoteDataset:
    """Load, check and split the study's data the way it will be uploaded."""
    kind = detect_kind(train_file)
    train = _load_kind(train_file, kind, system_prompt)
    validation: list[dict[str, Any]] = []
    if validation_file is not None:
        if detect_kind(validation_file) != kind:
            raise DataError([f"{validation_file}: not the same format ({kind}) as {train_file}"])
        validation = _load_kind(validation_file, kind, system_prompt)
    elif validation_split is not None:
        train, validation = _split_records(train, validation_split, shuffle_seed)
    return RemoteDataset(kind, tuple(train), tuple(validation))


__all__ = ["DataError", "RemoteDataset", "detect_kind", "load_dataset", "preference_problems"]
