"""Local DPO: TRL's DPOTrainer on the skeleton of an SFT trial (``training.method: dpo``).

The data is OpenAI's preference JSONL (``harness.data.preference``), checked with ``file:line``
errors before anything trains, and handed to TRL as conversational preference rows: ``prompt`` (the
input messages, system prompt included), ``chosen`` and ``rejected`` (one assistant message each).
``search_space.method`` still picks which weights train, from the one base model of this process:

- ``lora``: peft layers on the shared base, unloaded afterwards. TRL's reference is the same model
  with the adapter disabled, so there is no second copy of the base.
- ``full``: a private copy trains, and another frozen copy is the reference.

Curves: the loss plus TRL's ``rewards/{chosen,rejected,accuracies,margins}`` and ``logps/*`` (train,
and ``eval_`` ones at each evaluation); the eval loss still feeds the pruner.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness import models
from harness.backends.local.callbacks import STEP_METRICS
from harness.backends.local.sft import check_training_args
from harness.backends.local.trainer_args import with_sampled_args
from harness.config import DPO_METRICS, StudyConfig
from harness.data.chat import DataError
from harness.data.split import Sourced, load_preference_splits
from harness.hyperparams import TrialParams
from harness.settings.training import DPO_TRAINING_ARGS

if TYPE_CHECKING:
    from harness.backends.local.plan import TrialPlan

# TRL's own default, used (and logged as the resolved beta) when the search space leaves beta out.
DEFAULT_BETA = 0.1
LOGGED = tuple(name.removeprefix("eval_") for name in DPO_METRICS)
DPO_STEP_METRICS: Mapping[str, str] = {
    **STEP_METRICS,
    **{k: k for k in LOGGED},
    **{f"eval_{k}": f"eval_{k}" for k in LOGGED},
}


@dataclass(frozen=True)
class Pair:
    """One preference pair as TRL trains on it, with its token counts."""

    source: str  # file:line
    row: dict[str, Any]  # {"prompt": [...], "chosen": [assistant], "rejected": [assistant]}
    prompt_tokens: int
    lengths: tuple[int, int]  # prompt + chosen, prompt + rejected

    @property
    def completion_tokens(self) -> int:
        """Tokens the loss covers: both answers, end-of-turn included."""
        return sum(self.lengths) - 2 * self.prompt_tokens


def _plain(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _tokens(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def to_pair(tokenizer: Any, source: str, record: dict[str, Any]) -> Pair:
    """Pure but for the tokenizer: a checked DPO record as TRL's conversational preference row."""
    prompt = _plain(record["input"]["messages"])
    chosen, rejected = _plain(record["preferred_output"]), _plain(record["non_preferred_output"])
    return Pair(
        source=source,
        row={"prompt": prompt, "chosen": chosen, "rejected": rejected},
        prompt_tokens=_tokens(tokenizer, prompt, generation_prompt=True),
        lengths=(_tokens(tokenizer, prompt + chosen), _tokens(tokenizer, prompt + rejected)),
    )


def fit_pairs(
    tokenizer: Any, sourced: Sequence[Sourced], max_length: int, too_long: Literal["error", "drop", "truncate"]
) -> tuple[list[Pair], list[str]]:
    """(kept pairs, dropped file:line messages). A pair fits when its longer side does; one that does
    not is an error (file:line), dropped, or kept for TRL to cut at ``max_length`` (``truncate``:
    the prompt must leave room for some answer, as TRL requires)."""
    kept: list[Pair] = []
    dropped: list[str] = []
    problems: list[str] = []
    for source, record in sourced:
        pair = to_pair(tokenizer, source, record)
        if max(pair.lengths) <= max_length:
            kept.append(pair)
            continue
        message = (
            f"{source}: {max(pair.lengths)} tokens (prompt and the longer answer) exceeds max_seq_length {max_length}"
        )
        if too_long == "error":
            problems.append(message + " (set data.too_long=drop or truncate, or raise max_seq_length)")
        elif too_long == "truncate" and pair.prompt_tokens < max_length:
            kept.append(pair)
        else:
            dropped.append(message)
    if problems:
        raise DataError(problems)
    if not kept:
        raise DataError(["every preference pair was dropped as too long", *dropped])
    return kept, dropped


def digest(pairs: Sequence[Pair]) -> str:
    """Content hash of the pairs trained and evaluated on, whatever the file names."""
    h = hashlib.sha256()
    for pair in pairs:
        h.update(json.dumps(pair.row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()[:16]


def drop_fused_head(model: Any) -> None:
    """Undo TRL's ``add_fused_lm_head``: it sets ``forward`` on the instance (the shared base, for LoRA),
    wrapping the original bound to that object; a copy made for generation would still call it."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    vars(inner).pop("forward", None)


class DPO:
    """The Objective (local/backend.py) of DPO on preference pairs, with TRL's DPOTrainer."""

    step_metrics = DPO_STEP_METRICS
    packing = False  # TRL batches the pairs itself

    def __init__(self, config: StudyConfig):
        self.config = config
        self.train_pairs: list[Pair] = []
        self.eval_pairs: list[Pair] = []

    def prepare(self) -> dict[str, Any]:
        check_training_args(list(self.config.search_space.training_args))
        train, validation = load_preference_splits(self.config.data, self.config.system_prompt)
        tokenizer = models.load_tokenizer(self.config.base_model)
        limit, policy = self.config.max_seq_length, self.config.data.too_long
        self.train_pairs, dropped = fit_pairs(tokenizer, train, limit, policy)
        self.eval_pairs, eval_dropped = fit_pairs(tokenizer, validation, limit, policy)
        models.load_base(self.config.base_model)
        return {
            "dataset_digest": digest(self.train_pairs + self.eval_pairs),
            "format": "dpo",
            "n_train": len(self.train_pairs),
            "n_validation": len(self.eval_pairs),
            "train_tokens": sum(sum(p.lengths) for p in self.train_pairs),
            "train_trained_tokens": sum(p.completion_tokens for p in self.train_pairs),
            "dropped_too_long": len(dropped) + len(eval_dropped),
        }

    def trial_facts(self, params: TrialParams) -> dict[str, Any]:
        return {}  # augmentation is refused for DPO studies at config load

    def beta(self, params: TrialParams) -> float:
        return DEFAULT_BETA if params.beta is None else float(params.beta)

    def trainer(self, plan: TrialPlan, model: Any, work: Path, callbacks: list[Any], quiet: bool) -> Any:
        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback
        from trl import DPOConfig, DPOTrainer

        if not self.train_pairs:
            raise RuntimeError("prepare() must run before train()")
        if quiet:  # the study draws its own bars; datasets' map bars would cut through them
            from datasets.utils.logging import disable_progress_bar

            disable_progress_bar()
        dpo_args = {
            "beta": self.beta(plan.params),
            "max_length": self.config.max_seq_length,  # TRL 1.x has no separate max_prompt_length
            "gradient_checkpointing": False,  # TRL's default trades ~20% speed for memory a small model does not need
            "disable_dropout": False,  # search_space.dropout means on DPO trials what it means on SFT ones
            # Length-grouped batches read this column (TRL's rows have no input_ids to measure).
            "length_column_name": "length",
        }
        settings = with_sampled_args(dpo_args, DPO_TRAINING_ARGS, plan.trainer_kwargs(work, quiet))
        trainer = DPOTrainer(
            model=model,
            ref_model=None if plan.params.is_lora else self._reference(),
            args=DPOConfig(**settings),
            train_dataset=self._dataset(Dataset, self.train_pairs),
            eval_dataset=self._dataset(Dataset, self.eval_pairs),
            processing_class=models.load_tokenizer(self.config.base_model),
            callbacks=callbacks,
        )
        if "ref" in getattr(model, "peft_config", {}):
            # Handed a PeftModel, TRL keeps a frozen "ref" copy of the fresh adapter. Fresh LoRA is the identity,
            # so the adapter-disabled model is the same reference: TRL falls back to it once "ref" is gone.
            model.delete_adapter("ref")
        trainer.remove_callback(PrinterCallback)
        return trainer

    @staticmethod
    def _dataset(dataset_class: Any, pairs: Sequence[Pair]) -> Any:
        return dataset_class.from_list([{**p.row, "length": max(p.lengths)} for p in pairs])

    def _reference(self) -> Any:
        """Full DPO's frozen reference: a private copy of the base, as the policy is."""
        reference = copy.deepcopy(models.load_base(self.config.base_model))
        reference.requires_grad_(False)
        return reference.eval()

    def trained(self, trainer: Any) -> None:
        drop_fused_head(trainer.model)

    def final_metrics(self, final: Mapping[str, float]) -> dict[str, float]:
        metrics = {name: float(final[name]) for name in ("eval_loss", *DPO_METRICS) if name in final}
        return metrics | {"trained_tokens_per_epoch": float(sum(p.completion_tokens for p in self.train_pairs))}

    def resolved_params(self, params: TrialParams) -> dict[str, Any]:
        return {"training_method": "dpo"} | ({"beta": DEFAULT_BETA} if params.beta is None else {})

    def cleanup(self) -> None:
        drop_fused_head(models.load_base(self.config.base_model))  # a failed trial never reached trained()

    def baseline_metrics(self, plan: TrialPlan) -> dict[str, float]:
        """None: the untuned base is its own reference, so its DPO loss is ln 2 and its rewards 0 by construction."""
        return {}
