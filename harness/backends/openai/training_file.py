"""Training data for remote fine-tuning: chat (supervised) or preference (DPO) JSONL.

Chat records are checked by ``harness.data.chat.load_jsonl``, preference records
(``input`` / ``preferred_output`` / ``non_preferred_output``) by ``harness.data.preference``,
the validators ``harness data check`` runs too. What is uploaded is exactly what was checked
and counted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.data.chat import DataError, load_jsonl, with_system_prompt
from harness.data.preference import Format, detect_format, load_preferences, preference_problems
from harness.data.preference import with_system_prompt as pair_with_system_prompt
from harness.data.split import group_key, split_items

# Which data kind each remote method trains on.
METHOD_KIND: dict[str, Format] = {"supervised": "chat", "dpo": "dpo"}


@dataclass(frozen=True)
class RemoteDataset:
    """The records to upload (one JSON object each), after system prompt and split."""

    kind: Format
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


def _load_kind(path: Path, kind: Format, system_prompt: str | None) -> list[dict[str, Any]]:
    if kind == "dpo":
        return [pair_with_system_prompt(r, system_prompt) for r in load_preferences(path)]
    examples = with_system_prompt(load_jsonl(path), system_prompt)
    return [{"messages": [dict(m) for m in e.messages]} for e in examples]


def load_dataset(
    train_file: Path,
    validation_file: Path | None,
    validation_split: float | None,
    shuffle_seed: int,
    system_prompt: str | None,
) -> RemoteDataset:
    """Load, check and split the study's data the way it will be uploaded."""
    kind = detect_format(train_file)
    train = _load_kind(train_file, kind, system_prompt)
    validation: list[dict[str, Any]] = []
    if validation_file is not None:
        if detect_format(validation_file) != kind:
            raise DataError([f"{validation_file}: not the same format ({kind}) as {train_file}"])
        validation = _load_kind(validation_file, kind, system_prompt)
    elif validation_split is not None:
        keys = [group_key(kind, r, i) for i, r in enumerate(train, start=1)]
        train, validation = split_items(train, keys, validation_split, shuffle_seed)
    return RemoteDataset(kind, tuple(train), tuple(validation))


__all__ = ["DataError", "RemoteDataset", "load_dataset", "load_preferences", "preference_problems"]
