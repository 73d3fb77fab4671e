"""Train / held-out splits that keep conversations together: ``harness data split`` and a study's
``data.validation_split`` (local and remote backends) share one rule.

Examples are grouped by their first user message, so a multi-turn conversation and its
prefixes (and plain duplicates) land on the same side: a held-out prompt the model trained on
would flatter every held-out score. Whole groups are shuffled with the seed and taken into the
held-out side while that brings its size closer to ``heldout * examples``.

The output lines are the input's own bytes (``\\r\\n`` endings included), each file in input
order; only a UTF-8 byte-order mark is left out, since it belongs to the file, not its first line.
"""

from __future__ import annotations

import codecs
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.data.chat import DataError, Example, load_jsonl, read_numbered, record_problems, with_system_prompt
from harness.data.preference import Format, detect_format, load_sourced, preference_problems, reference_example
from harness.data.preference import with_system_prompt as with_system

if TYPE_CHECKING:
    from harness.config import DataConfig


class SplitError(ValueError):
    """A split that cannot be made: too few groups, a bad ratio, an output over the input."""


@dataclass(frozen=True)
class Split:
    train: tuple[int, ...]  # 1-based line numbers, input order
    heldout: tuple[int, ...]
    groups: int

    @property
    def examples(self) -> int:
        return len(self.train) + len(self.heldout)


def group_key(file_format: Format, record: dict[str, Any], line: int) -> str:
    """The first user message; an example without one is a group of its own."""
    messages = record["messages"] if file_format == "chat" else record["input"]["messages"]
    first = next((m["content"] for m in messages if m["role"] == "user"), None)
    return f"user:{first}" if first is not None else f"line:{line}"


def plan_split(keyed: Sequence[tuple[int, str]], heldout: float, seed: int) -> Split:
    """Pure: which lines go where, for ``(line, group key)`` pairs."""
    if not 0 < heldout < 1:
        raise SplitError(f"--heldout must be between 0 and 1, got {heldout}")
    groups: dict[str, list[int]] = {}
    for line, key in keyed:
        groups.setdefault(key, []).append(line)
    # Groups in first-appearance order before the shuffle: the seed alone decides the outcome.
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    target = heldout * len(keyed)
    taken: set[int] = set()
    for group in order:
        if abs(len(taken) + len(group) - target) < abs(len(taken) - target):
            taken.update(group)
    if not taken or len(taken) == len(keyed):
        raise SplitError(
            f"cannot hold out {heldout:.0%} of {len(keyed)} examples in {len(groups)} prompt group(s) "
            "with both sides non-empty"
        )
    lines = [line for line, _ in keyed]
    return Split(
        train=tuple(n for n in lines if n not in taken),
        heldout=tuple(n for n in lines if n in taken),
        groups=len(groups),
    )


def split_items(items: Sequence[Any], keys: Sequence[str], ratio: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(train, held-out) of ``items`` whose group keys are ``keys``; DataError when it cannot be made."""
    try:
        planned = plan_split(list(enumerate(keys, start=1)), ratio, seed)
    except SplitError as exc:
        raise DataError([f"a validation split of {ratio}: {exc}"]) from None
    return [items[n - 1] for n in planned.train], [items[n - 1] for n in planned.heldout]


def split_examples(examples: Sequence[Example], ratio: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A study's ``validation_split`` of chat examples, grouped by first user message."""
    keys = [group_key("chat", {"messages": e.messages}, i) for i, e in enumerate(examples, start=1)]
    return split_items(examples, keys, ratio, seed)


Sourced = tuple[str, dict[str, Any]]  # (file:line, preference record)


def load_preference_splits(data: DataConfig, system_prompt: str | None) -> tuple[list[Sourced], list[Sourced]]:
    """Train and validation DPO records per the config, system prompt applied; raises DataError
    (file:line) when a file is not preference JSONL or any record is bad."""
    for path in (data.train_file, data.validation_file):
        if path is not None and path.exists() and detect_format(path) != "dpo":
            raise DataError(
                [
                    f"{path}: chat JSONL, but a DPO study trains on preference JSONL (input / "
                    "preferred_output / non_preferred_output); see `harness data pairs`"
                ]
            )
    train = load_sourced(data.train_file)
    if data.validation_file is not None:
        validation = load_sourced(data.validation_file)
    else:
        keys = [group_key("dpo", record, i) for i, (_, record) in enumerate(train, start=1)]
        train, validation = split_items(train, keys, data.validation_split or 0.2, data.shuffle_seed)

    def prompted(pairs: list[Sourced]) -> list[Sourced]:
        return [(source, with_system(record, system_prompt)) for source, record in pairs]

    return prompted(train), prompted(validation)


def load_splits(data: DataConfig, system_prompt: str | None) -> tuple[list[Example], list[Example]]:
    """Train and validation examples per the config, system prompt applied; raises DataError.

    Preference (DPO) data gives each pair as a chat example whose reference is the preferred output.
    """
    if detect_format(data.train_file) == "dpo":
        train_pairs, validation_pairs = load_preference_splits(data, system_prompt)
        return [reference_example(*p) for p in train_pairs], [reference_example(*p) for p in validation_pairs]
    train = load_jsonl(data.train_file)
    if data.validation_file is not None:
        validation = load_jsonl(data.validation_file)
    else:
        train, validation = split_examples(train, data.validation_split or 0.2, data.shuffle_seed)
    return with_system_prompt(train, system_prompt), with_system_prompt(validation, system_prompt)


def split_file(path: Path, heldout: float, seed: int) -> Split:
    """Validate ``path`` like the sweep does (DataError on any problem), then plan the split."""
    file_format = detect_format(path)
    check = record_problems if file_format == "chat" else preference_problems
    records = read_numbered(path, check)
    return plan_split([(n, group_key(file_format, r, n)) for n, r in records], heldout, seed)


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return a.samefile(b)
    return a.resolve() == b.resolve()


def _write_lines(lines: Sequence[bytes], path: Path) -> None:
    """Temp file then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(line + b"\n" for line in lines))
    tmp.replace(path)


def write_split(source: Path, split: Split, out_train: Path, out_heldout: Path) -> None:
    """Copy each planned line of ``source`` byte for byte; never onto the input."""
    for out in (out_train, out_heldout):
        if _same_file(out, source):
            raise SplitError(f"{out} is the input file; write the split elsewhere")
    if _same_file(out_train, out_heldout):
        raise SplitError(f"--out-train and --out-heldout are the same file ({out_train})")
    # Split on b"\n" like the reader splits on "\n": line numbers agree, and no UTF-8
    # multi-byte sequence contains the byte 0x0A.
    raw = source.read_bytes().removeprefix(codecs.BOM_UTF8).split(b"\n")
    _write_lines([raw[n - 1] for n in split.train], out_train)
    _write_lines([raw[n - 1] for n in split.heldout], out_heldout)
