"""A trial's trainer arguments: the harness's own fields, then the ones the search space samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config import ConfigError


def with_sampled_args(owned: Mapping[str, Any], table: Mapping[str, str], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The harness's own trainer fields, exactly ``table``'s keys, plus ``sampled``: a trial's
    training_args (for DPO's extra fields: the TrainingArguments fields that carry them).

    ``table`` is what config load refuses in search_space.training_args: a field set here but
    missing from it would let a config through that fails every trial, so that stops at once.
    """
    if drift := sorted(set(owned) ^ set(table)):
        raise RuntimeError(f"trainer fields set and their table in harness.settings.training differ: {drift}")
    if taken := sorted(set(owned) & set(sampled)):  # refused at load; only a config built around it gets here
        raise ConfigError(f"search_space.training_args: the harness sets {', '.join(taken)} itself")
    return {**owned, **sampled}
