"""Batches that compute nothing they do not train: packed rows, and logits only where a label is.

Packing: a micro-batch's examples are laid end to end in one row, with ``position_ids`` restarting
at 0 for each example and no attention mask. Transformers reads such position ids as packed
sequences and builds a block-diagonal causal mask (``masking_utils.find_packed_sequence_indices``),
so no token attends across examples and no pad token is computed; models on SDPA attend within
each example only (local/packed_attention.py). Models whose attention cannot take packed rows fall
back to dynamic padding (``packing_works`` decides, by measuring).

Logits only where trained: the LM head (49,152 wide for SmolLM2) and the loss run on the positions
whose next token is trained (assistant turns), through the model's ``logits_to_keep`` boolean mask;
system and user tokens still pass through the transformer, since later tokens attend to them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.backends.local import packed_attention
from harness.config import ConfigError
from harness.data.tokenize import IGNORE_INDEX

log = logging.getLogger(__name__)
Feature = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class TrainedTokensCollator:
    """Features -> a batch: one packed row (``pack``) or right-padded rows, plus ``logits_to_keep``.

    Labels stay aligned with ``input_ids`` (the loss shifts them); the first label of each packed
    example is ignored so an example's last token never learns to predict the next example.
    """

    pad_token_id: int
    pack: bool = True
    trim_logits: bool = True  # False for a model whose forward takes no logits_to_keep

    def __call__(self, features: Sequence[Feature]) -> dict[str, Any]:
        batch = self._packed(features) if self.pack else self._padded(features)
        if not self.trim_logits:
            return batch
        targets = batch["labels"][:, 1:] != IGNORE_INDEX
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = targets  # position p is kept when it predicts a trained token p + 1
        # No KV cache while training: transformers reads packed position ids only when there is none.
        return {**batch, "logits_to_keep": keep, "use_cache": False}

    @staticmethod
    def _packed(features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for feature in features:
            tokens = list(feature["input_ids"])
            ids += tokens
            labels += [IGNORE_INDEX, *list(feature["labels"])[1:]]
            positions += range(len(tokens))
        return {
            "input_ids": torch.tensor([ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
        }

    def _padded(self, features: Sequence[Feature]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id)
        labels = torch.full((len(features), width), IGNORE_INDEX)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids[row, :n] = torch.tensor(list(feature["input_ids"]))
            labels[row, :n] = torch.tensor(list(feature["labels"]))
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def trained_token_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Cross-entropy of the kept logits (one row per trained target, in order) against their targets.

    Summed and divided by ``num_items_in_batch`` (the trained targets of the whole accumulated
    batch, which the Trainer counts) when given, so accumulation weighs every token alike; else a mean.
    """
    logits = outputs.logits if hasattr(outputs, "logits") else outputs["logits"]
    shifted = labels[:, 1:]
    trained = shifted != IGNORE_INDEX
    targets = shifted[trained].to(logits.device)
    if logits.dim() == 3:  # every position's logits (a model without logits_to_keep): keep the trained ones
        logits = logits[:, :-1][trained.to(logits.device)]
    logits = logits.reshape(-1, logits.shape[-1]).float()  # the loss in fp32 even under bf16 autocast
    if targets.numel() == 0:  # nothing trained in this micro-batch (weight-0 turns only)
        return logits.sum() * 0.0
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(logits, targets)
    total = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    return total / torch.as_tensor(num_items_in_batch, device=total.device)


def accepts_trained_token_batches(model: Any) -> bool:
    """Whether the model's forward takes ``position_ids`` and a ``logits_to_keep`` mask."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
    try:
        names = set(inspect.signature(inner.forward).parameters)
    except (TypeError, ValueError):
        return False
    return {"position_ids", "logits_to_keep"} <= names


@torch.no_grad()
def packing_works(model: Any, examples: Sequence[Feature], tolerance: float = 1e-3) -> bool:
    """Measured, not assumed: two examples packed in one row give the logits they give alone.

    A model whose attention ignores packed position ids would let the second example attend to
    the first, and its logits would differ. Checked once per study on the base model, in eval mode.
    """
    if len(examples) < 2 or not accepts_trained_token_batches(model):
        return False
    first, second = (list(e["input_ids"])[:24] for e in examples[:2])
    was_training = model.training
    model.eval()
    try:
        alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids in (first, second)]
        positions = torch.tensor([[*range(len(first)), *range(len(second))]])
        packed = model(input_ids=torch.tensor([first + second]), position_ids=positions, use_cache=False).logits[0]
    except Exception as error:  # an architecture that refuses packed inputs outright
        log.info("packed rows refused (%s): dynamic padding", error)
        return False
    finally:
        model.train(was_training)
    together = torch.cat(alone).float()
    return bool(torch.allclose(packed.float(), together, atol=tolerance, rtol=tolerance))


def choose_packing(
    setting: str, model: Any, features: Sequence[Feature], attention_precision: str = "auto"
) -> tuple[bool, str]:
    """``training.packing`` (auto | on | off) and the model's measured behaviour -> (pack, why);
    packed examples' attention runs in ``training.attention_precision``."""
    if setting == "off":
        return False, "dynamic padding (training.packing: off)"
    # Checked below, in the form trials will run.
    per_example = packed_attention.use_for(model, attention_precision)
    if packing_works(model, features):
        return True, "packed rows" + (", attention per example" if per_example else "")
    if per_example:
        model.set_attn_implementation("sdpa")
    if setting == "on":
        raise ConfigError(
            "training.packing: on, but this model's attention lets packed examples see each other "
            "(or it takes no position_ids/logits_to_keep); use auto or off"
        )
    log.warning("this model's attention cannot take packed rows: dynamic padding")
    return False, "dynamic padding (the model's attention cannot take packed rows)"


def pad_token_id(tokenizer: Any) -> int:
    """The id padded rows are filled with (never attended to, never a target)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
