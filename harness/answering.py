"""The one shape every model answers in: local weights, a remote fine-tune, a registered version.

Backends hand one back per trained model, evaluation calls it, the MLflow pyfunc wraps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Messages = list[dict[str, Any]]
# Token counts of texts with a model's own tokenizer (evaluation sizes answer budgets with it).
TokenCounter = Callable[[list[str]], list[int]]


class Answerer(Protocol):
    """Greedy answers, one per chat prompt, in prompt order; ``max_new_tokens`` caps each answer
    (None: the answerer's own default)."""

    def __call__(self, prompts: list[Messages], max_new_tokens: int | None = None) -> list[str]: ...
