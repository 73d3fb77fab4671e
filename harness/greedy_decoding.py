"""The fast greedy decoding loop behind :func:`harness.generation.generate` (no reload per trial).

A plain greedy loop over the model's own forward, on a private copy of the model (LoRA merged in; when
trials train in bf16, bf16 Linear weights run under autocast, the Trainer's arithmetic): the caller's
weights, config and training flags are never touched. What makes it faster than ``model.generate`` on a
small CPU (``bench/eval_throughput.py``):

- rows leave the batch as soon as they emit an end-of-turn/EOS token, so one big batch costs what its
  unfinished rows cost, and big batches read the weights once per token for many rows;
- keys/values go into buffers allocated once (``generate``'s cache reallocates every layer every token);
- prompts are prefilled a few at a time, each group padded only to its own longest prompt, and the
  prefill computes logits for the last position only;
- single-token decode attention runs on the key/value heads directly with a mask built once per step.

:func:`greedy_supported` says which models the loop covers; the others (encoder-decoders, sliding-window
or linear-attention layers, generation configs with logits processors) use ``model.generate``.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Sequence
from typing import Any

import torch

from harness import models

ATTENTION = "harness_greedy"  # registered in transformers' AttentionInterface on first use
PREFILL_GROUP = 8  # prompts per prefill forward: measured fastest on a 2-core CPU (see _prefill)


# --- the private generation copy -------------------------------------------------------------------------


def _decode_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """One query token: attention over the key/value heads directly (no repeat_kv), additive float mask.

    ``key``/``value`` are views into preallocated buffers. Fastest on the CPU measured: two matmuls for
    fp32 queries (fp32 models, and bf16 ones under autocast, whose RoPE returns fp32; autocast runs the
    matmuls in bf16), SDPA for half-precision ones."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_length, dim = query.shape
    if q_length != 1:  # the prefill: SDPA handles many queries well
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    kv_heads = key.shape[1]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # head h reads kv head h // group
    scale = scaling if scaling is not None else dim**-0.5
    if query.dtype != torch.float32:
        output = torch.nn.functional.scaled_dot_product_attention(
            grouped, key, value, attn_mask=attention_mask, scale=scale
        )
    else:
        scores = torch.matmul(grouped, key.transpose(-1, -2)) * scale
        if attention_mask is not None:
            scores = scores + attention_mask  # [batch, 1, 1, kv]: broadcasts over heads
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
        output = torch.matmul(weights, value)  # [batch, kv_heads, group, dim]
    return output.reshape(batch, heads, 1, dim).transpose(1, 2), None


def _register_attention() -> None:
    from transformers import AttentionInterface

    if ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION, _decode_attention)


def greedy_supported(model: Any) -> bool:
    """Whether :func:`greedy` reproduces ``model.generate(do_sample=False)`` for this model."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    adapters = getattr(model, "peft_config", None) or {}
    if any(getattr(a, "is_prompt_learning", False) for a in adapters.values()):
        return False  # prefix/prompt tuning feeds its own past_key_values; LoRA merges into the copy
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    if config is None or config.is_encoder_decoder or not getattr(inner, "_supports_attention_backend", False):
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:
        return False
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return False  # sliding windows, linear attention, ...: keep transformers' own loop
    g = getattr(inner, "generation_config", None)
    processors = (  # what generate would apply even with do_sample=False
        getattr(g, "repetition_penalty", None) not in (None, 1.0),
        getattr(g, "no_repeat_ngram_size", None) not in (None, 0),
        bool(getattr(g, "bad_words_ids", None) or getattr(g, "suppress_tokens", None)),
        bool(getattr(g, "begin_suppress_tokens", None) or getattr(g, "forced_eos_token_id", None)),
        bool(getattr(g, "min_length", 0) or getattr(g, "min_new_tokens", None)),
    )
    return not any(processors)


def generation_copy(model: Any, bf16: bool, attention: str | None = ATTENTION) -> Any:
    """A private eval-mode copy to generate with: LoRA merged, bf16 Linear weights if asked, own attention.

    A copy because LoRA models share the base's weights (trials must leave them bit-identical), and bf16
    weights are read at half the bytes per token; 0.2-0.4 s for a 135M model."""
    clone = copy.deepcopy(model)
    if hasattr(clone, "merge_and_unload"):
        clone = clone.merge_and_unload()  # one matmul per projection instead of three
    clone.eval()
    clone.requires_grad_(False)
    if bf16:
        # Linear weights only, run under autocast: measured as fast as a whole-model bf16 copy, and
        # closer to the fp32 answers.
        models.bf16_linear_weights(clone)
    if attention is not None:
        _register_attention()
        clone.set_attn_implementation(attention)
    return clone


# --- the cache and the greedy loop --------------------------------------------------------------------------


@functools.cache
def _layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A layer's keys/values written in place into zeroed buffers sized for the whole generation.

        DynamicLayer concatenates every step: a fresh, growing allocation per layer per token, whose
        first-touch page faults cost more than the attention itself on a small VM."""

        def __init__(self, batch: int, capacity: int) -> None:
            super().__init__()
            self.batch, self.capacity, self.length = batch, capacity, 0

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            shape = (self.batch, key_states.shape[1], self.capacity)
            # Zeros, not empty: masked positions still enter the matmuls, and garbage could be inf/NaN.
            self.key_buffer = key_states.new_zeros((*shape, key_states.shape[-1]))
            self.value_buffer = value_states.new_zeros((*shape, value_states.shape[-1]))
            self.is_initialized = True

        def write_rows(self, start: int, key_states: torch.Tensor, value_states: torch.Tensor, end: int) -> None:
            """A prefill group's states into rows ``start``..., right-aligned at ``end`` (left padding)."""
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            rows, width = slice(start, start + key_states.shape[0]), key_states.shape[-2]
            self.key_buffer[rows, :, end - width : end] = key_states
            self.value_buffer[rows, :, end - width : end] = value_states
            self._resize(end)

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            self.key_buffer[:, :, self.length : end] = key_states
            self.value_buffer[:, :, self.length : end] = value_states
            self._resize(end)
            return self.keys, self.values

        def _resize(self, length: int) -> None:
            self.length = length
            self.keys, self.values = self.key_buffer[:, :, :length], self.value_buffer[:, :, :length]

        def get_seq_length(self) -> int:
            return self.length

        def get_max_length(self) -> int:
            return self.capacity

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
                self.batch = self.key_buffer.shape[0]
                self._resize(self.length)

    return PreallocatedLayer


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)


def _prefill(
    model: Any, rows: Sequence[Sequence[int]], capacity: int, pad_id: int, group: int
) -> tuple[Any, torch.Tensor]:
    """The prompts' keys/values in one preallocated cache, left-padded to the longest prompt, and each
    row's last logits. Computed ``group`` rows at a time, each group padded only to its own longest
    prompt: one long prompt in a big batch would otherwise multiply the prefill's work and memory."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    width = max(len(r) for r in rows)
    cache = DynamicCache(config=model.config)
    layer = _layer_class()
    cache.layers = [layer(len(rows), capacity) for _ in cache.layers]
    logits = []
    for start in range(0, len(rows), group):
        chunk = rows[start : start + group]
        span = max(len(r) for r in chunk)
        input_ids = torch.full((len(chunk), span), pad_id, dtype=torch.long)
        real = torch.zeros((len(chunk), span), dtype=torch.bool)
        for j, row in enumerate(chunk):
            input_ids[j, span - len(row) :] = torch.tensor(list(row), dtype=torch.long)
            real[j, span - len(row) :] = True
        # As generate: positions count real tokens only, so padding never shifts a prompt's positions.
        positions = (real.long().cumsum(-1) - 1).clamp_(min=0)
        causal = torch.ones((span, span), dtype=torch.bool).tril_()
        # Padding queries may see themselves: a fully masked row would make NaNs that reach real rows as 0 * NaN.
        allowed = (causal & real[:, None, :]) | torch.eye(span, dtype=torch.bool)
        scratch = DynamicCache(config=model.config)
        output = model(
            input_ids=input_ids.to(device),
            attention_mask=_additive(allowed[:, None], dtype).to(device),
            position_ids=positions.to(device),
            **{cache_keyword(model): scratch},
            use_cache=True,
            # An index tensor, not logits_to_keep=1: that slice is non-contiguous, and matmul then copies
            # the whole lm_head once per row (450 MB per 8 rows for SmolLM2).
            logits_to_keep=torch.tensor([span - 1], device=device),
        )
        for target, source in zip(cache.layers, scratch.layers, strict=True):
            target.write_rows(start, source.keys, source.values, width)
        logits.append(output.logits[:, -1])
    return cache, torch.cat(logits)


def cache_keyword(model: Any) -> str:
    """``cache`` where the model's forward takes it (transformers 5.24 renamed ``past_key_values``,
    which now warns on every call), else the old name."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        names = inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in names else "past_key_values"


def greedy(
    model: Any,
    rows: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    prefill_group: int | None = None,
) -> list[list[int]]:
    """Greedy continuations of token-id rows (decoded as one left-padded batch), each ending at a stop id.

    Positions and masks follow ``generate``'s for left padding; a row that has stopped leaves the batch.
    Rows should come sorted by length (``generate`` sorts them) so prefill groups carry little padding."""
    count = len(rows)
    outputs: list[list[int]] = [[] for _ in range(count)]
    if count == 0 or max_new_tokens <= 0:
        return outputs
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    width = max(len(r) for r in rows)
    group = max(1, prefill_group or PREFILL_GROUP)
    cache, logits = _prefill(model, rows, width + max_new_tokens, pad_id, group)
    keys = torch.zeros((count, width), dtype=torch.bool)  # which cached positions hold real tokens
    for j, row in enumerate(rows):
        keys[j, width - len(row) :] = True
    next_position = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    stops = set(stop_ids)
    alive = list(range(count))
    for step in range(max_new_tokens):
        tokens = logits.argmax(-1).cpu()
        keep = []
        for slot, (row, token) in enumerate(zip(alive, tokens.tolist(), strict=True)):
            outputs[row].append(token)
            if token not in stops:
                keep.append(slot)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):  # finished rows stop costing anything
            index = torch.tensor(keep, dtype=torch.long)
            cache.batch_select_indices(index.to(device))
            tokens, keys, next_position = tokens[index], keys[index], next_position[index]
            alive = [alive[slot] for slot in keep]
        keys = torch.cat([keys, torch.ones((len(alive), 1), dtype=torch.bool)], dim=1)
        next_position = next_position + 1
        logits = model(
            input_ids=tokens[:, None].to(device),
            attention_mask=_additive(keys[:, None, None, :], dtype).to(device),
            position_ids=next_position[:, None].to(device),
            **{cache_keyword(model): cache},
            use_cache=True,
        ).logits[:, -1]
    return outputs
