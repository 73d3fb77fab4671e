"""What a training objective (SFT, DPO) brings to the local trial skeleton (local/backend.py).

The skeleton plans each trial first (harness.backends.local.plan) and hands the plan down: an
objective builds its trainer from it and never asks the backend for settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.backends.local.plan import TrialPlan
from harness.hyperparams import TrialParams


class Objective(Protocol):
    """What one training objective brings to the shared local trial: its data, trainer and metrics."""

    step_metrics: Mapping[str, str]  # Trainer log keys -> the trial's metric names
    packing: bool  # whether its rows pack several examples (the attention numerics depend on it)

    def prepare(self) -> dict[str, Any]:
        """Load and check the data (file:line errors before any run); return dataset facts."""
        ...

    def trial_facts(self, params: TrialParams) -> dict[str, Any]:
        """Set up the trial's data (an augmentation); return what to log about it."""
        ...

    def trainer(self, plan: TrialPlan, model: Any, work: Path, callbacks: list[Any], quiet: bool) -> Any:
        """The trainer of the planned trial, writing under ``work``."""
        ...

    def trained(self, trainer: Any) -> None:
        """After the final evaluation: undo what the trainer did to the model beyond its weights."""
        ...

    def final_metrics(self, final: Mapping[str, float]) -> dict[str, float]: ...

    def resolved_params(self, params: TrialParams) -> dict[str, Any]: ...

    def cleanup(self) -> None:
        """After a trial's model is released (also when it failed)."""
        ...

    def baseline_metrics(self, plan: TrialPlan) -> dict[str, float]:
        """The untuned base model's metrics, evaluated as a trial planned so would evaluate."""
        ...
