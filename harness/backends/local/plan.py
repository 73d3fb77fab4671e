"""Pure: a local trial's whole plan, computed once from its sampled params, the config and the
machine (learning rate, batches, precision, every trainer argument), then handed down.

``dry_run``, the trainer an objective builds, the baseline's evaluation and the params a trial logs
all read one ``TrialPlan``, so what a dry run shows is what runs, and nothing below the backend
asks it for settings again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.backends.local.trainer_args import with_sampled_args
from harness.config import TrainingConfig
from harness.hyperparams import TrialParams
from harness.settings.training import HARNESS_TRAINING_ARGS


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


@dataclass(frozen=True)
class TrialPlan:
    """Everything one local trial trains with; only where it writes comes later (its run's dir)."""

    params: TrialParams
    resolved: ResolvedTraining
    device: str  # "cuda" or "cpu"
    seed: int  # training.seed, offset by k for the k-th confirmation repeat of a configuration
    # The harness's TrainingArguments fields but output_dir and disable_tqdm (see trainer_kwargs).
    trainer_args: Mapping[str, Any]

    def trainer_kwargs(self, output_dir: Path, quiet: bool = False) -> dict[str, Any]:
        """TrainingArguments fields of the trial writing to ``output_dir`` (TRL's configs take the
        same ones, and more): the harness's own, then the sampled ``search_space.training_args``."""
        owned = {"output_dir": str(output_dir), **self.trainer_args, "disable_tqdm": quiet}
        return with_sampled_args(owned, HARNESS_TRAINING_ARGS, self.params.training_args)


def plan_trial(params: TrialParams, training: TrainingConfig, *, bf16: bool, device: str, seed: int) -> TrialPlan:
    """The plan of a trial with ``params`` on this machine (``bf16`` and ``device`` are its facts)."""
    resolved = resolve(params, training, bf16)
    args = dict(
        num_train_epochs=params.epochs,
        per_device_train_batch_size=resolved.micro_batch,
        per_device_eval_batch_size=max(resolved.micro_batch, 8),
        gradient_accumulation_steps=resolved.accumulation,
        learning_rate=resolved.learning_rate,
        eval_strategy="steps",
        eval_steps=training.eval_steps,
        logging_steps=training.logging_steps,
        save_strategy=training.save_strategy,
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        save_only_model=True,
        bf16=resolved.bf16,
        use_cpu=device == "cpu",
        train_sampling_strategy="group_by_length" if training.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        report_to="none",  # our tracker logs; transformers' MLflow callback would log twice
        seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        prediction_loss_only=True,  # evaluation needs the loss, not every logit gathered
    )
    return TrialPlan(params, resolved, device, seed, MappingProxyType(args))
