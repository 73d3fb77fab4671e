"""``harness data check``: the sweep's own validators on a file, then what training would see.

Each file is chat (SFT) or preference (DPO) JSONL, told apart by the keys of its first record
that names a format. Problems are the sweep's ``file:line`` problems, all files at once. A valid
file gets a ``Summary``: tokens are counted on the conversation rendered with the chat template
and tokenized exactly as the local backend trains on it (``harness.data.tokenize``), system
prompt included.

A DPO example is two sequences, the input followed by either output. ``tokens_*`` describe the
longer one (what has to fit ``max_seq_length``); ``tokens_per_epoch`` counts every token of
both, because both are forwarded every epoch and services bill whole examples, not only the
tokens the loss covers.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.chat import DataError, Example, read_records, record_problems, with_system_prompt
from harness.data.preference import Format, detect_format, preference_problems
from harness.data.prices import Price
from harness.data.tokenize import tokenize_example

Message = dict[str, Any]


@dataclass(frozen=True)
class CheckedFile:
    """A file every line of which passed its format's validator."""

    path: Path
    format: Format
    records: tuple[tuple[str, Any], ...]  # (file:line, record)


@dataclass(frozen=True)
class Summary:
    path: Path
    format: Format
    examples: int
    turns_mean: float  # assistant replies per example (a single Q&A is 1)
    tokenizer: str
    tokens_min: int
    tokens_mean: float
    tokens_max: int
    tokens_per_epoch: int  # every token of every sequence: what a price per 1M tokens bills
    max_seq_length: int
    over_length: tuple[str, ...]  # file:line of examples with a sequence over max_seq_length
    duplicate_prompts: tuple[tuple[str, ...], ...]  # file:line groups sharing their user content
    weight_zero_turns: int  # assistant messages with weight 0 (shown to the model, not trained)
    price: Price | None = None
    checked_examples: int = 0  # examples with "assert" checks (evaluation scores their answers)
    groups: tuple[str, ...] = ()  # distinct "group" ids (paraphrases of one question), file order

    @property
    def n_duplicate_prompts(self) -> int:
        """Examples whose prompt an earlier example already has."""
        return sum(len(group) - 1 for group in self.duplicate_prompts)

    @property
    def cost_per_epoch_usd(self) -> float | None:
        return None if self.price is None else self.price.cost_usd(self.tokens_per_epoch)


def read_checked(path: Path) -> CheckedFile:
    """Validate every line with the validator of the file's format; DataError lists them all."""
    file_format = detect_format(path)
    check = record_problems if file_format == "chat" else preference_problems
    return CheckedFile(path, file_format, tuple(read_records(path, check)))


def read_all(paths: Sequence[Path]) -> tuple[list[CheckedFile], list[str]]:
    """Every file read, so one run reports the problems of all of them."""
    checked: list[CheckedFile] = []
    problems: list[str] = []
    for path in paths:
        try:
            checked.append(read_checked(path))
        except DataError as exc:
            problems += exc.problems
    return checked, problems


def sequences(file_format: Format, record: dict[str, Any]) -> list[tuple[Message, ...]]:
    """The conversations training renders from one record (two for a preference pair)."""
    if file_format == "chat":
        return [tuple(record["messages"])]
    prompt = tuple(record["input"]["messages"])
    return [(*prompt, *record["preferred_output"]), (*prompt, *record["non_preferred_output"])]


def prompt_key(messages: Sequence[Message]) -> tuple[str, ...]:
    """What the user said, turn by turn: two examples with the same key ask the same thing."""
    return tuple(m["content"] for m in messages if m["role"] == "user")


def duplicate_groups(keys: Sequence[tuple[str, tuple[str, ...]]]) -> tuple[tuple[str, ...], ...]:
    """Groups of sources sharing a non-empty key, in file order."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for source, key in keys:
        if key:
            groups[key].append(source)
    return tuple(tuple(group) for group in groups.values() if len(group) > 1)


def sequence_tokens(tokenizer: Any, messages: Sequence[Message], source: str, system_prompt: str | None) -> int:
    """Tokens of one conversation as the local backend trains on it."""
    example = with_system_prompt([Example(tuple(messages), source)], system_prompt)[0]
    return len(tokenize_example(tokenizer, example).input_ids)


@dataclass(frozen=True)
class _Counted:
    source: str
    lengths: tuple[int, ...]  # tokens per sequence
    turns: int
    weight_zero: int
    prompt: tuple[str, ...]


def _count(checked: CheckedFile, tokenizer: Any, system_prompt: str | None) -> list[_Counted]:
    counted = []
    for source, record in checked.records:
        convs = sequences(checked.format, record)
        assistants = [m for m in convs[0] if m["role"] == "assistant"]
        counted.append(
            _Counted(
                source=source,
                lengths=tuple(sequence_tokens(tokenizer, c, source, system_prompt) for c in convs),
                turns=len(assistants),
                weight_zero=sum(m.get("weight") == 0 for m in assistants),
                prompt=prompt_key(convs[0]),
            )
        )
    return counted


def summarise(
    checked: CheckedFile,
    tokenizer: Any,
    tokenizer_name: str,
    max_seq_length: int,
    system_prompt: str | None = None,
    price: Price | None = None,
) -> Summary:
    """What training on ``checked`` would see: sizes, tokens, over-length, duplicates, cost."""
    counted = _count(checked, tokenizer, system_prompt)
    longest = [max(c.lengths) for c in counted]
    return Summary(
        path=checked.path,
        format=checked.format,
        examples=len(counted),
        turns_mean=statistics.fmean(c.turns for c in counted),
        tokenizer=tokenizer_name,
        tokens_min=min(longest),
        tokens_mean=statistics.fmean(longest),
        tokens_max=max(longest),
        tokens_per_epoch=sum(sum(c.lengths) for c in counted),
        max_seq_length=max_seq_length,
        over_length=tuple(c.source for c, n in zip(counted, longest, strict=True) if n > max_seq_length),
        duplicate_prompts=duplicate_groups([(c.source, c.prompt) for c in counted]),
        weight_zero_turns=sum(c.weight_zero for c in counted),
        price=price,
        checked_examples=sum(bool(record.get("assert")) for _, record in checked.records),
        groups=groups_of(checked),
    )


def groups_of(checked: CheckedFile) -> tuple[str, ...]:
    """The file's distinct ``group`` ids in file order (a chat file's; preference files have none)."""
    found = (str(record["group"]) for _, record in checked.records if "group" in record)
    return tuple(dict.fromkeys(found))


def groups_only_in(sides: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Per side (a file, a split), the groups no other side has, sorted; nothing when fewer than
    two sides have groups (then there is nothing to compare)."""
    if sum(bool(groups) for groups in sides.values()) < 2:
        return {}
    sides_with = Counter(g for groups in sides.values() for g in groups)
    return {side: sorted(g for g in groups if sides_with[g] == 1) for side, groups in sides.items()}


def one_sided_groups(checked: Sequence[CheckedFile]) -> list[str]:
    """Warnings for groups that only one of several files has: a held-out paraphrase of a question
    never trained on (or a trained one never tested) measures something else than its group's."""
    only = groups_only_in({str(c.path): set(groups_of(c)) for c in checked})
    return [f"group {g!r} appears only in {path}" for path, groups in only.items() for g in groups]
