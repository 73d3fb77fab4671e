"""Local fine-tuning with the transformers Trainer and peft (LoRA) or full weights."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from harness import models
from harness.backends.base import TrainResult, TrialContext
from harness.backends.local.augmentation import AugmentedSets
from harness.backends.local.callbacks import STEP_METRICS, MetricsCallback, PruningCallback, RichProgressCallback
from harness.backends.local.packing import TrainedTokensCollator, choose_packing, pad_token_id, trained_token_loss
from harness.backends.local.plan import resolve
from harness.config import ConfigError, StudyConfig
from harness.data import chat
from harness.data.chat import DataError
from harness.data.preference import detect_format
from harness.data.split import load_splits
from harness.data.tokenize import TokenizedSet, tokenize_all
from harness.device import cpu_features, use_bf16
from harness.hyperparams import TrialParams


def set_dropout(model: Any, p: float) -> None:
    """Full fine-tuning dropout: every dropout the model has, in config and in live modules."""
    for key, value in vars(model.config).items():
        if "dropout" in key and isinstance(value, float):
            setattr(model.config, key, p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p


def _features(tokenized: TokenizedSet) -> list[dict[str, list[int]]]:
    return [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in tokenized.examples
    ]


def check_training_args(names: list[str]) -> None:
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError("search_space.training_args: unknown TrainingArguments field(s) " + ", ".join(unknown))


class LocalBackend:
    """Trains each trial from the one base model loaded in this process."""

    def __init__(self, config: StudyConfig):
        self.config = config
        self.train_set: TokenizedSet | None = None
        self.eval_set: TokenizedSet | None = None
        self.augmented: AugmentedSets | None = None  # chat training sets per augmentation (prepare)
        self.packing = False  # packed rows, once prepare has checked the model takes them

    def prepare(self) -> dict[str, Any]:
        check_training_args(list(self.config.search_space.training_args))
        if detect_format(self.config.data.train_file) == "dpo":
            raise DataError(
                [
                    f"{self.config.data.train_file}: preference (DPO) JSONL, but training.method is sft;"
                    " set training.method: dpo to train on it"
                ]
            )
        train, validation = load_splits(self.config.data, self.config.system_prompt)
        tokenizer = models.load_tokenizer(self.config.base_model)
        policy = self.config.data.too_long
        self.train_set = tokenize_all(tokenizer, train, self.config.max_seq_length, policy)
        self.eval_set = tokenize_all(tokenizer, validation, self.config.max_seq_length, policy)
        self.train_examples, self.validation_examples = train, validation
        self.augmented = AugmentedSets(self.config, train, self.train_set)
        base = models.load_base(self.config.base_model)
        self.packing, batching = choose_packing(self.config.training.packing, base, _features(self.train_set))
        return {
            "batching": batching,
            "cpu": cpu_features() if not torch.cuda.is_available() else torch.cuda.get_device_name(),
            "dataset_digest": chat.digest(train + validation),
            "n_train": len(self.train_set.examples),
            "n_validation": len(self.eval_set.examples),
            "train_tokens": self.train_set.total_tokens,
            "train_trained_tokens": self.train_set.trained_tokens,
            "dropped_too_long": len(self.train_set.dropped) + len(self.eval_set.dropped),
        }

    def dry_run(self, params: Sequence[TrialParams]) -> str:
        """Validate data and model, then show what the sampled trials would train with."""
        facts = self.prepare()
        lines = [f"{self.config.study_name}: local training of {self.config.base_model}"]
        lines += [f"  {key}: {value}" for key, value in facts.items()]
        for number, trial_params in enumerate(params):
            plan = self.plan(trial_params)
            lines.append(
                f"  trial {number}: {trial_params.as_flat_dict()} -> learning_rate {plan.learning_rate:.3g}, "
                f"micro-batch {plan.micro_batch} x {plan.accumulation} accumulation, dropout on "
                f"{plan.dropout_applies_to}, bf16 {plan.bf16}"
            )
        return "\n".join(lines)

    def plan(self, params: TrialParams) -> Any:
        """What ``params`` mean for this machine's training (harness.backends.local_plan.resolve)."""
        return resolve(params, self.config.training, use_bf16(self.config.training.precision))

    def _trial_model(self, params: TrialParams) -> Any:
        base = models.load_base(self.config.base_model)
        if not params.is_lora:
            model = copy.deepcopy(base)  # full fine-tuning must never touch the shared base
            model.requires_grad_(True)  # an earlier LoRA trial froze the shared base's weights
            set_dropout(model, params.dropout)
            return model
        from peft import LoraConfig, get_peft_model

        targets = params.lora_target_modules or ()
        lora = LoraConfig(
            r=params.lora_rank or 8,
            lora_alpha=params.lora_alpha or 16,
            lora_dropout=params.dropout,
            target_modules="all-linear" if targets == ("all-linear",) else list(targets),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(base, lora)

    def training_arguments(
        self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False
    ) -> TrainingArguments:
        return TrainingArguments(**self.training_kwargs(params, output_dir, disable_tqdm))

    def training_kwargs(self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False) -> dict[str, Any]:
        """TrainingArguments fields of a trial (TRL's configs take the same ones, and more)."""
        t = self.config.training
        plan = self.plan(params)
        on_cpu = not torch.cuda.is_available()
        return dict(
            output_dir=str(output_dir),
            num_train_epochs=params.epochs,
            per_device_train_batch_size=plan.micro_batch,
            per_device_eval_batch_size=max(plan.micro_batch, 8),
            gradient_accumulation_steps=plan.accumulation,
            learning_rate=plan.learning_rate,
            eval_strategy="steps",
            eval_steps=t.eval_steps,
            logging_steps=t.logging_steps,
            save_strategy=t.save_strategy,
            save_steps=t.save_steps,
            save_total_limit=t.save_total_limit,
            save_only_model=True,
            bf16=plan.bf16,
            use_cpu=on_cpu,
            train_sampling_strategy="group_by_length" if t.group_by_length else "random",
            include_num_input_tokens_seen="non_padding",
            report_to="none",  # our tracker logs; transformers' MLflow callback would log twice
            seed=t.seed,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            prediction_loss_only=True,  # evaluation needs the loss, not every logit gathered
            disable_tqdm=disable_tqdm,
            **params.training_args,
        )

    def _trainer(self, model: Any, args: TrainingArguments, callbacks: list[Any]) -> Trainer:
        tokenizer = models.load_tokenizer(self.config.base_model)
        assert self.train_set is not None and self.eval_set is not None
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_features(self.train_set),
            eval_dataset=_features(self.eval_set),
            processing_class=tokenizer,
            data_collator=TrainedTokensCollator(pad_token_id(tokenizer), pack=self.packing),
            compute_loss_func=trained_token_loss,  # the LM head and loss on trained targets only
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # with tqdm off it would print every log dict
        return trainer

    # Trainer log keys -> the trial's metric names (a subclass's trainer logs more).
    step_metrics: Mapping[str, str] = STEP_METRICS

    def trial_trainer(self, params: TrialParams, model: Any, work: Path, callbacks: list[Any], quiet: bool) -> Any:
        """The trainer of one trial (a subclass trains another objective on the same skeleton)."""
        if self.train_set is None or self.eval_set is None:
            raise RuntimeError("prepare() must run before train()")
        return self._trainer(model, self.training_arguments(params, work, disable_tqdm=quiet), callbacks)

    def final_metrics(self, final: Mapping[str, float]) -> dict[str, float]:
        """The trial's final training metrics from the trainer's last evaluation."""
        assert self.train_set is not None
        return {
            "eval_loss": float(final["eval_loss"]),
            "trained_tokens_per_epoch": float(self.train_set.trained_tokens),
        }

    def trained(self, trainer: Any) -> None:
        """After the final evaluation: undo what the trainer did to the model beyond its weights."""

    def resolved_params(self, params: TrialParams) -> dict[str, Any]:
        return {**self.plan(params).as_params(), "device": "cuda" if torch.cuda.is_available() else "cpu"}

    def release_for(self, params: TrialParams, model: Any) -> Callable[[], None]:
        """What frees a trial's model: LoRA layers live inside the shared base, and unloading them
        restores it exactly, without merging; a full fine-tune is a private copy."""
        return model.unload if params.is_lora else (lambda: None)

    def use_augmentation(self, params: TrialParams) -> dict[str, Any]:
        """Train on the training set of the trial's ``augmentation`` (built once: local/augmentation.py)."""
        if self.augmented is None:
            return {}
        self.train_set, facts = self.augmented.get(params.augmentation)
        return facts

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        """Train one trial; the trained model stays in memory for ``answer`` until ``release``."""
        augmentation = self.use_augmentation(params)
        tokenizer = models.load_tokenizer(self.config.base_model)
        # Per run id, never per trial number: a study name used again must not overwrite the weights
        # an older run's harness.model_dir tag points at. Without a run (a bare context), a fresh id.
        work = self.config.training.run_dir(self.config.study_name, ctx.run_id or f"norun-{uuid.uuid4().hex}")
        model = self._trial_model(params)
        release = self.release_for(params, model)
        metrics_cb, pruning_cb = MetricsCallback(ctx.log_metrics, self.step_metrics), PruningCallback(ctx.report)
        callbacks: list[Any] = [metrics_cb, pruning_cb]
        if ctx.progress is not None:
            callbacks.append(RichProgressCallback(ctx.progress, f"trial {ctx.number} ({params.method})"))
        try:
            trainer = self.trial_trainer(params, model, work, callbacks, quiet=ctx.progress is not None)
            trainer.train()
            pruning_cb.enabled = False
            final = trainer.evaluate()
            self.trained(trainer)
            final_dir = work / "final"
            trainer.model.save_pretrained(final_dir)
            tokenizer.save_pretrained(final_dir)
        except BaseException:
            release()
            raise
        rates = metrics_cb.tokens_per_second
        metrics = {**self.final_metrics(final), "tokens_per_second_mean": sum(rates) / len(rates) if rates else 0.0}
        return TrainResult(
            metrics=metrics,
            params={**self.resolved_params(params), **augmentation},
            model_dir=final_dir,
            answer=self.answerer(model),
            release=release,
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts with the base model's tokenizer: how evaluation sizes its answer budgets."""
        return models.count_tokens(self.config.base_model, texts)

    def baseline_metrics(self) -> dict[str, float]:
        """The untuned base model's eval loss, measured exactly like a trial's final evaluation (same
        collator, eval batch size and precision), without training and leaving the shared base as it was."""
        import tempfile

        base = models.load_base(self.config.base_model)
        params = TrialParams(
            method="full",
            epochs=1,
            batch_size=self.config.training.max_micro_batch_size,
            lr_multiplier=1.0,
            dropout=0.0,
        )
        # Trainer puts the model in eval mode and sets config.use_cache: put back what the shared base had.
        was_training, use_cache = base.training, getattr(base.config, "use_cache", None)
        try:
            with tempfile.TemporaryDirectory() as tmp:  # never the study's work dir: nothing is saved
                args = self.training_arguments(params, Path(tmp), disable_tqdm=True)
                loss = self._trainer(base, args, []).evaluate()["eval_loss"]  # no_grad inside
        finally:
            base.train(was_training)
            base.config.use_cache = use_cache
        return {"eval_loss": float(loss)}

    def base_answerer(self) -> Any:
        """Answers from the untuned base model: the study's before-picture."""
        return self.answerer(models.load_base(self.config.base_model))

    def answerer(self, model: Any) -> Any:
        """Greedy batched answers from ``model`` (already in memory) for chat prompts."""
        from harness.generation import generate

        tokenizer = models.load_tokenizer(self.config.base_model)
        settings = self.config.evaluation

        def answer(prompts: list[list[dict[str, Any]]], max_new_tokens: int | None = None) -> list[str]:
            """``max_new_tokens`` overrides the configured cap for this call (evaluation sizes it per split)."""
            return generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens or settings.max_new_tokens,
                batch_size=settings.batch_size,
                bf16=use_bf16(self.config.training.precision),
            )

        return answer
