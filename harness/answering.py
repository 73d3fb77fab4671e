"""The one shape every model answers in: local weights, a remote fine-tune, a registered version.

Backends hand one back per trained model, evaluation calls it, the MLflow pyfunc wraps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, Any]]
# Token counts of texts with a model's own tokenizer (evaluation sizes answer budgets with it).
TokenCounter = Callable[[list[str]], list[int]]


class Answerer(Protocol):
    """Greedy answers, one per chat prompt, in prompt order; ``max_new_tokens`` caps each answer
    (None: the answerer's own default)."""

    def __call__(self, prompts: list[Messages], max_new_tokens: int | None = None) -> list[str]: ...


@runtime_checkable
class Sampling(Protocol):
    """An answerer that can also sample: ``n`` answers per chat prompt at ``temperature``, the same
    for the same ``seed``, in prompt order (answer stability without greedy decoding)."""

    def sample(
        self, prompts: list[Messages], n: int, temperature: float, seed: int, max_new_tokens: int | None = None
    ) -> list[list[str]]: ...
