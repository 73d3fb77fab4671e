"""What a training objective (SFT, DPO) and the local trial skeleton need from each other."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.hyperparams import TrialParams


class TrialSetup(Protocol):
    """The skeleton's side (harness.backends.local.backend.LocalBackend): a trial's training settings."""

    def training_arguments(self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False) -> Any: ...

    def training_kwargs(self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False) -> dict[str, Any]:
        """TrainingArguments fields of a trial (TRL's configs take the same ones, and more)."""
        ...


class Objective(Protocol):
    """What one training objective brings to the shared local trial: its data, trainer and metrics."""

    step_metrics: Mapping[str, str]  # Trainer log keys -> the trial's metric names

    def prepare(self, local: TrialSetup) -> dict[str, Any]:
        """Load and check the data (file:line errors before any run); return dataset facts."""
        ...

    def trial_facts(self, params: TrialParams) -> dict[str, Any]:
        """Set up the trial's data (an augmentation); return what to log about it."""
        ...

    def trainer(
        self, local: TrialSetup, params: TrialParams, model: Any, work: Path, callbacks: list[Any], quiet: bool
    ) -> Any: ...

    def trained(self, trainer: Any) -> None:
        """After the final evaluation: undo what the trainer did to the model beyond its weights."""
        ...

    def final_metrics(self, final: Mapping[str, float]) -> dict[str, float]: ...

    def resolved_params(self, params: TrialParams) -> dict[str, Any]: ...

    def cleanup(self) -> None:
        """After a trial's model is released (also when it failed)."""
        ...

    def baseline_metrics(self, local: TrialSetup) -> dict[str, float]: ...
