"""The one shape every model answers in: local weights, a remote fine-tune, a registered version.

Backends hand one back per trained model, evaluation calls it, the MLflow pyfunc wraps it.
"""

from __future__ import annotations

from typing import Any, Protocol

Messages = list[dict[str, Any]]


class Answerer(Protocol):
    """Greedy answers, one per chat prompt, in prompt order; ``max_new_tokens`` caps each answer
    (None: the answerer's own default)."""

    def __call__(self, prompts: list[Messages], max_new_tokens: int | None = None) -> list[str]: ...
