"""Local training settings: how trials train, and where their weights live and for how long."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import Field

from harness.settings.frozen import Frozen

FullWeightsPolicy = Literal["best", "all", "none"]
# What a local study trains for, and so which data it reads: sft on chat JSONL, dpo (TRL's
# DPOTrainer) on OpenAI's preference JSONL. Study-level, because the data format follows from it;
# search_space.method (lora | full) still picks which weights train.
TrainingMethod = Literal["sft", "dpo"]
# How a model runs on this machine: auto picks bf16 where the CPU or GPU has fast bf16.
Precision = Literal["auto", "bf16", "fp32"]

# TrainingArguments fields every local trial takes from the harness, each with what it comes from.
# harness.backends.local.plan builds exactly these keys and refuses to run when they differ, so
# this table is what search_space.training_args is checked against at load (no transformers import).
HARNESS_TRAINING_ARGS: Mapping[str, str] = MappingProxyType(
    {
        "output_dir": "training.work_dir",
        "num_train_epochs": "search_space.epochs",
        "per_device_train_batch_size": "search_space.batch_size and training.max_micro_batch_size",
        "per_device_eval_batch_size": "training.max_micro_batch_size",
        "gradient_accumulation_steps": "search_space.batch_size and training.max_micro_batch_size",
        "learning_rate": "training.base_learning_rate and search_space.lr_multiplier",
        "eval_strategy": "training.eval_steps",
        "eval_steps": "training.eval_steps",
        "logging_steps": "training.logging_steps",
        "save_strategy": "training.save_strategy",
        "save_steps": "training.save_steps",
        "save_total_limit": "training.save_total_limit",
        "save_only_model": "the harness (trials keep weights, never resume from a checkpoint)",
        "bf16": "training.precision",
        "use_cpu": "the harness (the device it finds)",
        "train_sampling_strategy": "training.group_by_length",
        "include_num_input_tokens_seen": "the harness (its tokens-per-second metrics)",
        "report_to": "the harness (it logs to MLflow itself)",
        "seed": "training.seed",
        "dataloader_num_workers": "the harness",
        "remove_unused_columns": "the harness (its collator reads every column)",
        "prediction_loss_only": "the harness (evaluation reads only the loss)",
        "disable_tqdm": "the harness (its own progress bars)",
    }
)
# What a DPO trial adds on top of those for TRL's DPOConfig (harness.backends.local.dpo).
DPO_TRAINING_ARGS: Mapping[str, str] = MappingProxyType(
    {
        "beta": "search_space.beta",
        "max_length": "max_seq_length",
        "gradient_checkpointing": "the harness",
        "disable_dropout": "search_space.dropout",
        "length_column_name": "training.group_by_length",
    }
)


class TrainingConfig(Frozen):
    method: TrainingMethod = "sft"
    base_learning_rate: dict[Literal["lora", "full"], float] = Field(
        default_factory=lambda: {"lora": 2e-4, "full": 2e-5}
    )
    max_micro_batch_size: int = Field(default=4, ge=1)
    eval_steps: int = Field(default=5, ge=1)
    logging_steps: int = Field(default=1, ge=1)
    save_strategy: Literal["no", "epoch", "steps"] = "epoch"
    save_steps: int = Field(default=50, ge=1)
    save_total_limit: int = Field(default=1, ge=1)
    # Checkpoints and final weights of each trial: <work_dir>/<study>/<mlflow run id>/ (see run_dir).
    work_dir: Path = Path("~/.cache/harness/work")
    precision: Precision = "auto"
    # Packed examples' attention under bf16: fp32, autocast, or auto (a fixed rule from the CPU's
    # features and the example length: harness.backends.local.packed_attention.fp32_max_tokens).
    attention_precision: Literal["auto", "fp32", "autocast"] = "auto"
    group_by_length: bool = True
    # Examples of a micro-batch packed in one row (no pad token computed; attention kept inside each
    # example), where a check on the model shows its attention takes packed rows; else dynamic padding.
    packing: Literal["auto", "on", "off"] = "auto"
    seed: int = 0
    # Which COMPLETE trials upload their full fine-tuned weights to their MLflow run (LoRA adapters,
    # a few MB, are always uploaded). A full fine-tune of SmolLM2-135M is about 540 MB, so the
    # default uploads only a trial that is the best COMPLETE trial so far in its study: the one
    # registration will want, at a cost of a few uploads per study instead of one per trial.
    # "none": full weights stay on the machine that trained them (registration must run there).
    log_full_weights: FullWeightsPolicy = "best"
    # When a study ends, keep the local work dirs of the best k COMPLETE trials and of registered
    # versions and delete the rest (finished trials only); None keeps everything.
    keep_local: int | None = Field(default=None, ge=0)
    # Which checkpoint a trial's result, weights and final evaluation come from: its best on the
    # objective (evaluation.during_training measures it) or its last. None: best when the objective
    # is measured during training, else last.
    keep: Literal["best", "last"] | None = None

    @property
    def harness_args(self) -> Mapping[str, str]:
        """The trainer fields this study's trials set themselves -> what each comes from."""
        return {**HARNESS_TRAINING_ARGS, **(DPO_TRAINING_ARGS if self.method == "dpo" else {})}

    def run_dir(self, study_name: str, run_id: str) -> Path:
        """One directory per MLflow run: a study name used again never overwrites older weights."""
        return self.work_dir.expanduser() / study_name / run_id
