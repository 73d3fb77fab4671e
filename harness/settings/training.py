"""Local training settings: how trials train, and where their weights live and for how long."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from harness.settings.base import Frozen

FullWeightsPolicy = Literal["best", "all", "none"]
# What a local study trains for, and so which data it reads: sft on chat JSONL, dpo (TRL's
# DPOTrainer) on OpenAI's preference JSONL. Study-level, because the data format follows from it;
# search_space.method (lora | full) still picks which weights train.
TrainingMethod = Literal["sft", "dpo"]


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
    precision: Literal["auto", "bf16", "fp32"] = "auto"
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

    def run_dir(self, study_name: str, run_id: str) -> Path:
        """One directory per MLflow run: a study name used again never overwrites older weights."""
        return self.work_dir.expanduser() / study_name / run_id
