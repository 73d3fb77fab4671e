"""Supervised fine-tuning on chat JSONL: the local backend's default objective (``training.method: sft``).

Conversations are rendered with the model's chat template and trained on their assistant turns
only; a micro-batch's examples go in one packed row where the model takes it (local/packing.py);
``search_space.augmentation`` picks the training set a trial uses (local/augmentation.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from harness import models
from harness.backends.local.augmentation import AugmentedSets
from harness.backends.local.callbacks import STEP_METRICS
from harness.backends.local.packing import (
    TrainedTokensCollator,
    accepts_trained_token_batches,
    choose_packing,
    pad_token_id,
    trained_token_loss,
)
from harness.config import ConfigError, StudyConfig
from harness.data import chat
from harness.data.chat import DataError
from harness.data.preference import detect_format
from harness.data.split import load_splits
from harness.data.tokenize import TokenizedSet, tokenize_all
from harness.device import cpu_features
from harness.hyperparams import TrialParams

if TYPE_CHECKING:
    from harness.backends.local.plan import TrialPlan


def features(tokenized: TokenizedSet) -> list[dict[str, list[int]]]:
    return [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in tokenized.examples
    ]


def tokens_digest(tokenized: TokenizedSet) -> str:
    """Digest of the token ids and labels a trial trains on, in dataset order."""
    digest = hashlib.sha256()
    for example in tokenized.examples:
        digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return digest.hexdigest()[:16]


def check_training_args(names: list[str]) -> None:
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError("search_space.training_args: unknown TrainingArguments field(s) " + ", ".join(unknown))


def machine() -> str:
    return cpu_features() if not torch.cuda.is_available() else torch.cuda.get_device_name()


class SFT:
    """The Objective (local/backend.py) of supervised fine-tuning with the transformers Trainer."""

    step_metrics: Mapping[str, str] = STEP_METRICS

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self.train_set: TokenizedSet | None = None
        self.eval_set: TokenizedSet | None = None
        self.train_examples: list[chat.Example] = []
        self.augmented: AugmentedSets | None = None  # chat training sets per augmentation
        self.packing = False  # packed rows, once prepare has checked the model takes them
        self.trim_logits = True  # logits on trained targets only, where the model takes logits_to_keep

    def prepare(self) -> dict[str, Any]:
        config = self.config
        check_training_args(list(config.search_space.training_args))
        if detect_format(config.data.train_file) == "dpo":
            raise DataError(
                [
                    f"{config.data.train_file}: preference (DPO) JSONL, but training.method is sft;"
                    " set training.method: dpo to train on it"
                ]
            )
        train, validation = load_splits(config.data, config.system_prompt)
        tokenizer = models.load_tokenizer(config.base_model)
        self.train_set = tokenize_all(tokenizer, train, config.max_seq_length, config.data.too_long)
        self.eval_set = tokenize_all(tokenizer, validation, config.max_seq_length, config.data.too_long)
        self.train_examples = list(train)
        self.augmented = AugmentedSets(config, train, self.train_set)
        base = models.load_base(config.base_model)
        self.packing, batching = choose_packing(
            config.training.packing, base, features(self.train_set), config.training.attention_precision
        )
        self.trim_logits = accepts_trained_token_batches(base)
        return {
            "batching": batching,
            "cpu": machine(),
            "dataset_digest": chat.digest(train + validation),
            "n_train": len(self.train_set.examples),
            "n_validation": len(self.eval_set.examples),
            "train_tokens": self.train_set.total_tokens,
            "train_trained_tokens": self.train_set.trained_tokens,
            "dropped_too_long": len(self.train_set.dropped) + len(self.eval_set.dropped),
        }

    def trial_facts(self, params: TrialParams) -> dict[str, Any]:
        """Train on the training set of the trial's ``augmentation`` (built once: local/augmentation.py)."""
        if self.augmented is None:
            return {}
        self.train_set, facts = self.augmented.get(params.augmentation)
        # With training.seed and the sampling strategy (logged beside it) this fixes the data order.
        return {**facts, "train_data_digest": tokens_digest(self.train_set)}

    def trainer_for(self, model: Any, args: TrainingArguments, callbacks: list[Any]) -> Trainer:
        if self.train_set is None or self.eval_set is None:
            raise RuntimeError("prepare() must run before train()")
        tokenizer = models.load_tokenizer(self.config.base_model)
        collator = TrainedTokensCollator(pad_token_id(tokenizer), pack=self.packing, trim_logits=self.trim_logits)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=features(self.train_set),
            eval_dataset=features(self.eval_set),
            processing_class=tokenizer,
            data_collator=collator,
            compute_loss_func=trained_token_loss,  # the LM head and loss on trained targets only
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # with tqdm off it would print every log dict
        return trainer

    def trainer(self, plan: TrialPlan, model: Any, work: Path, callbacks: list[Any], quiet: bool) -> Trainer:
        return self.trainer_for(model, TrainingArguments(**plan.trainer_kwargs(work, quiet)), callbacks)

    def trained(self, trainer: Any) -> None:
        """Nothing to undo: the Trainer changes only the weights."""

    def final_metrics(self, final: Mapping[str, float]) -> dict[str, float]:
        assert self.train_set is not None
        return {
            "eval_loss": float(final["eval_loss"]),
            "trained_tokens_per_epoch": float(self.train_set.trained_tokens),
        }

    def resolved_params(self, params: TrialParams) -> dict[str, Any]:
        return {}

    def cleanup(self) -> None:
        """Nothing beyond unloading LoRA layers (the backend does)."""

    def baseline_metrics(self, plan: TrialPlan) -> dict[str, float]:
        """The untuned base model's eval loss, measured exactly like a trial's final evaluation (same
        collator, eval batch size and precision), without training and leaving the shared base as it was."""
        base = models.load_base(self.config.base_model)
        # Trainer puts the model in eval mode and sets config.use_cache: put back what the shared base had.
        was_training, use_cache = base.training, getattr(base.config, "use_cache", None)
        # accelerate's prepare_model marks the model prepared (_is_accelerate_prepared, which a copy of
        # the base inherits, so a later trial's trainer skips preparing it, bf16 autocast included) and
        # under bf16 sets an autocast wrapper as its own forward: the base's attributes go back too.
        own = dict(vars(base))
        try:
            with tempfile.TemporaryDirectory() as tmp:  # never the study's work dir: nothing is saved
                args = TrainingArguments(**plan.trainer_kwargs(Path(tmp), quiet=True))
                loss = self.trainer_for(base, args, []).evaluate()["eval_loss"]  # no_grad inside
        finally:
            base.train(was_training)
            base.config.use_cache = use_cache
            vars(base).clear()
            vars(base).update(own)
        return {"eval_loss": float(loss)}
