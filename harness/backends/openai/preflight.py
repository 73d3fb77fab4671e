"""Token counts and cost before any paid call, after OpenAI's chat fine-tuning data-prep guide.

Tokens per example follow the guide's count: 3 tokens per message plus its encoded values
(1 more for a ``name``), plus 3 for the reply priming. The service trains on at most the
model's example context per example, so billed tokens per epoch sum ``min(tokens, cap)``.

Counting needs a tokenizer. ``tiktoken`` is exact but downloads its encoding files on first
use (they are not in the wheel); offline, with nothing cached, it fails. The ``auto`` counter
then falls back to the packaged SmolLM2 tokenizer (a different BPE: counts differ by some
percent), and to characters / 4 when that is unavailable. The preflight says which it used.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends.openai.training_file import RemoteDataset
from harness.settings.openai import OpenAIConfig

Counter = Callable[[str], int]


def _tiktoken_counter(model: str) -> Counter:
    import tiktoken

    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        encoding = tiktoken.get_encoding("o200k_base")  # the gpt-4o / gpt-4.1 family's encoding
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def _smollm2_counter() -> Counter:
    from harness.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _chars_counter() -> Counter:
    return lambda text: math.ceil(len(text) / 4)


def token_counter(choice: str, model: str) -> tuple[str, Counter]:
    """(name, counter) for the configured choice; ``auto`` tries each in order of accuracy."""
    builders: dict[str, Callable[[], Counter]] = {
        "tiktoken": lambda: _tiktoken_counter(model),
        "smollm2": _smollm2_counter,
        "chars": _chars_counter,
    }
    if choice != "auto":
        return choice, builders[choice]()
    for name in ("tiktoken", "smollm2"):
        try:
            return name, builders[name]()
        except Exception:  # missing package, no cached encoding offline, no packaged model
            continue
    return "chars", _chars_counter()


def _message_tokens(messages: Iterable[dict[str, Any]], count: Counter) -> int:
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, str):
                total += count(value) + (1 if key == "name" else 0)
    return total + 3


def example_tokens(record: dict[str, Any], count: Counter) -> int:
    """Tokens of one upload record; a DPO record counts its input and both outputs."""
    if "messages" in record:
        return _message_tokens(record["messages"], count)
    input_messages = record["input"]["messages"]
    return _message_tokens([*input_messages, *record["preferred_output"], *record["non_preferred_output"]], count)


@dataclass(frozen=True)
class Preflight:
    """What a dataset will cost to train on, per epoch and per trial."""

    model: str
    kind: str
    n_train: int
    n_validation: int
    counter: str
    tokens_min: int
    tokens_mean: float
    tokens_max: int
    cap: int
    n_over_cap: int
    billed_tokens_per_epoch: int
    price_per_mtok: float | None

    def trained_tokens(self, epochs: int) -> int:
        return self.billed_tokens_per_epoch * epochs

    def cost_usd(self, epochs: int) -> float | None:
        if self.price_per_mtok is None:
            return None
        return self.trained_tokens(epochs) * self.price_per_mtok / 1e6

    def facts(self) -> dict[str, Any]:
        """Flat values worth logging on the study's parent run."""
        return {
            "data_kind": self.kind,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "token_counter": self.counter,
            "tokens_per_example_min": self.tokens_min,
            "tokens_per_example_mean": round(self.tokens_mean, 1),
            "tokens_per_example_max": self.tokens_max,
            "billed_tokens_per_epoch": self.billed_tokens_per_epoch,
            "examples_over_context": self.n_over_cap,
        }

    def render(self) -> str:
        exact = "exact" if self.counter == "tiktoken" else "estimate"
        price = f"${self.price_per_mtok}/1M trained tokens" if self.price_per_mtok else "no price"
        lines = [
            f"model {self.model}: {self.kind} data, {self.n_train} train / {self.n_validation} validation examples",
            f"tokens per example ({self.counter}, {exact}): min {self.tokens_min}, "
            f"mean {self.tokens_mean:.1f}, max {self.tokens_max}",
            f"billed tokens per epoch: {self.billed_tokens_per_epoch} "
            f"({self.n_over_cap} example(s) truncated to {self.cap} tokens)",
            f"price: {price}",
        ]
        return "\n".join(lines)


def preflight(dataset: RemoteDataset, model: str, settings: OpenAIConfig) -> Preflight:
    """Count every training example once; cost then scales with epochs only."""
    name, count = token_counter(settings.token_counter, model)
    tokens: Sequence[int] = [example_tokens(r, count) for r in dataset.train]
    cap = settings.example_cap(model)
    return Preflight(
        model=model,
        kind=dataset.kind,
        n_train=len(dataset.train),
        n_validation=len(dataset.validation),
        counter=name,
        tokens_min=min(tokens),
        tokens_mean=statistics.fmean(tokens),
        tokens_max=max(tokens),
        cap=cap,
        n_over_cap=sum(t > cap for t in tokens),
        billed_tokens_per_epoch=sum(min(t, cap) for t in tokens),
        price_per_mtok=settings.training_price(model),
    )
