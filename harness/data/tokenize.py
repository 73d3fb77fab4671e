"""Render conversations with the model's chat template and mask everything but trained answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.data.chat import DataError, Example

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    source: str

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass(frozen=True)
class TokenizedSet:
    examples: list[Tokenized]
    dropped: list[str]

    @property
    def total_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)

    @property
    def trained_tokens(self) -> int:
        return sum(e.trained_tokens for e in self.examples)


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], generation_prompt: bool) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)


def trained_spans(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of assistant turns with weight != 0.

    A span runs from after the assistant header to the end of the turn, so the end-of-turn
    token is learned too and the model learns to stop.
    """
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (full.startswith(before) and full.startswith(through)):
            raise DataError(
                [
                    "the chat template does not render conversations prefix by prefix; "
                    "cannot locate assistant turns for loss masking"
                ]
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_example(tokenizer: Any, example: Example) -> Tokenized:
    """Token ids plus labels that equal the ids on trained assistant tokens and -100 elsewhere."""
    text, spans = trained_spans(tokenizer, example.messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [
        token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
        for token, (begin, _) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]
    return Tokenized(list(encoded["input_ids"]), labels, example.source)


def tokenize_all(
    tokenizer: Any,
    examples: Sequence[Example],
    max_length: int,
    too_long: Literal["error", "drop", "truncate"] = "error",
) -> TokenizedSet:
    """Tokenize a dataset; over-long examples are reported, dropped or truncated as configured."""
    kept: list[Tokenized] = []
    dropped: list[str] = []
    problems: list[str] = []
    for example in examples:
        item = tokenize_example(tokenizer, example)
        if len(item.input_ids) <= max_length:
            kept.append(item)
            continue
        message = f"{example.source}: {len(item.input_ids)} tokens exceeds max_seq_length {max_length}"
        if too_long == "error":
            problems.append(message + " (set data.too_long=drop or truncate, or raise max_seq_length)")
        elif too_long == "truncate" and any(x != IGNORE_INDEX for x in item.labels[:max_length]):
            kept.append(Tokenized(item.input_ids[:max_length], item.labels[:max_length], item.source))
        else:
            dropped.append(message)
    if problems:
        raise DataError(problems)
    if not kept:
        raise DataError(["every example was dropped as too long", *dropped])
    return TokenizedSet(kept, dropped)
