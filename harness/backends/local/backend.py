"""Local fine-tuning with the transformers Trainer (or TRL's) and peft (LoRA) or full weights.

One trial skeleton (model from the shared base, trainer, final evaluation, saved weights, answers)
serves every training objective; what differs between SFT and DPO (data, trainer, metrics) comes
from an ``Objective``: harness.backends.local.sft.SFT or harness.backends.local.dpo.DPO.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import TrainingArguments, set_seed

from harness import models
from harness.answering import Answerer, TokenCounter
from harness.backends.local import packed_attention
from harness.backends.local.callbacks import MetricsCallback, PruningCallback, RichProgressCallback
from harness.backends.local.checkpoint_eval import CheckpointCallback
from harness.backends.local.method import Objective
from harness.backends.local.plan import TrialPlan, plan_trial
from harness.backends.local.sft import SFT
from harness.backends.protocol import TrainResult, TrialContext
from harness.config import StudyConfig
from harness.device import cpu_flags, training_device, use_bf16, use_physical_cores
from harness.hyperparams import TrialParams
from harness.tracking import device_tags


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


class LocalBackend:
    """Trains each trial from the one base model loaded in this process, for one objective."""

    def __init__(self, config: StudyConfig, objective: Objective | None = None):
        self.config = config
        self.objective = objective if objective is not None else SFT(config)
        self._bf16_base: Any = None  # lora_base's copy, made on the first LoRA trial

    def prepare(self) -> dict[str, Any]:
        if not torch.cuda.is_available():
            use_physical_cores()
        return self.objective.prepare()

    def dry_run(self, params: Sequence[TrialParams]) -> str:
        """Validate data and model, then show what the sampled trials would train with."""
        facts = self.prepare()
        lines = [f"{self.config.study_name}: local training of {self.config.base_model}"]
        lines += [f"  {key}: {value}" for key, value in facts.items()]
        for number, trial_params in enumerate(params):
            plan = self.plan(trial_params).resolved
            lines.append(
                f"  trial {number}: {trial_params.as_flat_dict()} -> learning_rate {plan.learning_rate:.3g}, "
                f"micro-batch {plan.micro_batch} x {plan.accumulation} accumulation, dropout on "
                f"{plan.dropout_applies_to}, bf16 {plan.bf16}"
            )
        return "\n".join(lines)

    def plan(self, params: TrialParams, repeat: int = 0) -> TrialPlan:
        """A trial's whole plan on this machine (harness.backends.local.plan), made once per trial;
        ``repeat`` k (a confirmation repeat) trains with training.seed + k."""
        t = self.config.training
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return plan_trial(params, t, bf16=use_bf16(t.precision), device=device, seed=t.seed + repeat)

    def lora_base(self) -> Any:
        """The model LoRA trials wrap: the shared base, or a copy of it with bf16 Linear weights when
        trials train in bf16, so autocast does not cast every frozen weight again at every step."""
        base = models.load_base(self.config.base_model)
        if not use_bf16(self.config.training.precision):
            return base
        if self._bf16_base is None:
            self._bf16_base = models.bf16_linear_weights(copy.deepcopy(base))
        return self._bf16_base

    def trial_model(self, params: TrialParams) -> Any:
        if not params.is_lora:
            # full fine-tuning must never touch the shared base
            model = copy.deepcopy(models.load_base(self.config.base_model))
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
        return get_peft_model(self.lora_base(), lora)

    def training_arguments(
        self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False
    ) -> TrainingArguments:
        return TrainingArguments(**self.training_kwargs(params, output_dir, disable_tqdm))

    def training_kwargs(self, params: TrialParams, output_dir: Path, disable_tqdm: bool = False) -> dict[str, Any]:
        """TrainingArguments fields of a trial with ``params`` writing to ``output_dir``, from its plan."""
        return self.plan(params).trainer_kwargs(output_dir, disable_tqdm)

    def trial_trainer(self, plan: TrialPlan, model: Any, work: Path, callbacks: list[Any], quiet: bool) -> Any:
        """The trainer of one planned trial, as the objective builds it."""
        return self.objective.trainer(plan, model, work, callbacks, quiet)

    def release_for(self, params: TrialParams, model: Any) -> Callable[[], None]:
        """What frees a trial's model: LoRA layers live inside the shared base, and unloading them
        restores it exactly, without merging; a full fine-tune is a private copy."""

        def release() -> None:
            if params.is_lora:
                model.unload()
            self.objective.cleanup()

        return release

    def resolved_params(self, plan: TrialPlan) -> dict[str, Any]:
        return {
            **plan.resolved.as_params(),
            "device": plan.device,
            **self.numerics_params(plan),
            **self.objective.resolved_params(plan.params),
        }

    def numerics_params(self, plan: TrialPlan) -> dict[str, Any]:
        """What fixes a trial's numerics beyond its params and data, so that two runs can be compared."""
        import peft

        t = self.config.training
        limit = packed_attention.fp32_max_tokens(t.attention_precision, plan.device, cpu_flags())
        if not self.objective.packing:  # no packed rows: attention follows autocast
            limit = 0
        return {
            "attention_precision": t.attention_precision,
            # examples up to this many tokens attend in fp32; "all" when training is fp32 anyway
            "attention_fp32_max_tokens": "all" if limit is None or not plan.resolved.bf16 else limit,
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "peft_version": peft.__version__,
            "training_seed": plan.seed,
            "train_sampling": "group_by_length" if t.group_by_length else "random",
        }

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        """Train one trial; the trained model stays in memory for ``answer`` until ``release``."""
        plan = self.plan(params, ctx.repeat)
        ctx.set_tags(device_tags(training_device()))
        trial_facts = self.objective.trial_facts(params)
        tokenizer = models.load_tokenizer(self.config.base_model)
        # Per run id, never per trial number: a study name used again must not overwrite the weights
        # an older run's harness.model_dir tag points at. Without a run (a bare context), a fresh id.
        work = self.config.training.run_dir(self.config.study_name, ctx.run_id or f"norun-{uuid.uuid4().hex}")
        # The Trainer seeds only when it is built: LoRA's initial weights are drawn before that, and
        # would otherwise follow whatever this process drew earlier (an earlier trial, the baseline).
        set_seed(plan.seed)
        model = self.trial_model(params)
        release = self.release_for(params, model)
        metrics_cb, pruning_cb = (
            MetricsCallback(ctx.log_metrics, self.objective.step_metrics),
            PruningCallback(ctx.report),
        )
        callbacks: list[Any] = [metrics_cb, pruning_cb]
        checkpoints = self.checkpoint_callback(ctx, model)
        if checkpoints is not None:
            callbacks.append(checkpoints)
        if ctx.progress is not None:
            callbacks.append(RichProgressCallback(ctx.progress, f"trial {ctx.number} ({params.method})"))
        try:
            trainer = self.trial_trainer(plan, model, work, callbacks, quiet=ctx.progress is not None)
            trainer.train()
            pruning_cb.enabled = False
            kept = checkpoints.restore_best() if checkpoints is not None else None  # keep: best
            final = trainer.evaluate()
            self.objective.trained(trainer)
            final_dir = work / "final"
            trainer.model.save_pretrained(final_dir)
            tokenizer.save_pretrained(final_dir)
        except BaseException:
            release()
            raise
        rates = metrics_cb.tokens_per_second
        metrics = {
            **self.objective.final_metrics(final),
            "tokens_per_second_mean": sum(rates) / len(rates) if rates else 0.0,
            **(checkpoints.cost() if checkpoints is not None else {}),
        }
        kept_facts = checkpoints.facts(kept) if checkpoints is not None else {}
        return TrainResult(
            metrics=metrics,
            params={**self.resolved_params(plan), **trial_facts, **kept_facts},
            model_dir=final_dir,
            answer=self.answerer(model),
            release=release,
        )

    def token_counter(self) -> TokenCounter:
        return self.count_tokens

    def checkpoint_callback(self, ctx: TrialContext, model: Any) -> CheckpointCallback | None:
        """What measures the trial at its checkpoints (harness.backends.local.checkpoint_eval), if anything."""
        if ctx.checkpoint is None:
            return None
        every = self.config.evaluation.during_training.every_steps
        return CheckpointCallback(ctx.checkpoint, self.answerer(model), model, every, self.config.keep == "best")

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts with the base model's tokenizer: how evaluation sizes its answer budgets."""
        return models.count_tokens(self.config.base_model, texts)

    def baseline_metrics(self) -> dict[str, float]:
        """The untuned base model's before-picture on the objective's own metrics (eval loss for SFT)."""
        # Planned as a trial evaluates: micro-batches of the configured size, this machine's precision.
        size = self.config.training.max_micro_batch_size
        params = TrialParams(method="full", epochs=1, batch_size=size, lr_multiplier=1.0, dropout=0.0)
        return self.objective.baseline_metrics(self.plan(params))

    def base_answerer(self) -> Answerer:
        """Answers from the untuned base model: the study's before-picture."""
        return self.answerer(models.load_base(self.config.base_model))

    def answerer(self, model: Any) -> Answerer:
        """Greedy batched answers from ``model`` (already in memory) for chat prompts, and sampled
        ones for answer stability; a call's ``max_new_tokens`` overrides the configured cap."""
        from harness.generation import ModelAnswerer

        settings = self.config.evaluation
        return ModelAnswerer(
            model,
            models.load_tokenizer(self.config.base_model),
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            bf16=use_bf16(self.config.training.precision),
        )
