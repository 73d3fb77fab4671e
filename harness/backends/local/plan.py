"""Pure: what a local trial's sampled params mean for training (learning rate, batches, precision).

Both ``dry_run`` and ``train`` read this one function, so what a dry run shows is what runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.config import TrainingConfig
from harness.hyperparams import TrialParams


@dataclass(frozen=True)
class ResolvedTraining:
    learning_rate: float
    micro_batch: int
    accumulation: int
    bf16: bool
    # What the one ``dropout`` dimension does for this trial's method, logged beside it.
    dropout_applies_to: str

    def as_params(self) -> dict[str, Any]:
        """The resolved values as MLflow params (the names the runs have always used)."""
        values = asdict(self)
        return {
            "learning_rate": values["learning_rate"],
            "per_device_train_batch_size": values["micro_batch"],
            "gradient_accumulation_steps": values["accumulation"],
            "bf16": values["bf16"],
            "dropout_applies_to": values["dropout_applies_to"],
        }


DROPOUT_MEANING = {"lora": "lora_dropout", "full": "all_model_dropout"}


def micro_batches(batch_size: int, max_micro_batch_size: int) -> tuple[int, int]:
    """Effective batch -> (per-step micro batch, gradient accumulation steps), exact product."""
    micro = min(batch_size, max_micro_batch_size)
    while batch_size % micro:
        micro -= 1
    return micro, batch_size // micro


def resolve(params: TrialParams, training: TrainingConfig, bf16: bool) -> ResolvedTraining:
    """The method's base learning rate times the multiplier; the effective batch split exactly."""
    method = "lora" if params.is_lora else "full"
    micro, accumulation = micro_batches(params.batch_size, training.max_micro_batch_size)
    return ResolvedTraining(
        learning_rate=training.base_learning_rate[method] * params.lr_multiplier,
        micro_batch=micro,
        accumulation=accumulation,
        bf16=bf16,
        dropout_applies_to=DROPOUT_MEANING[method],
    )
