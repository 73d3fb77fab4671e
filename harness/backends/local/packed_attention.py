"""Attention over a packed row, one example at a time.

Transformers runs SDPA on a packed row with a block-diagonal mask over the whole row: every query
meets every key of the row, and the explicit mask keeps the CPU's flash kernel from skipping the
masked blocks. With four examples in a row that is about four times the attention arithmetic the
examples need, and the profile put attention at a third of a LoRA step. Here each example's
queries meet only its own keys, through SDPA with ``is_causal`` (the fused kernel); the result is
the block-diagonal mask's, by construction. Anything that is not one packed row (padded batches,
cached decoding, sliding windows, attention sinks) goes to transformers' SDPA unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from harness.device import cpu_flags

NAME = "harness_packed_sdpa"
# Measured on a 2-core AMD EPYC with AVX512-bf16 and no AMX (SmolLM2's 9 query and 3 key-value heads
# of 64, forward and backward): bf16 over fp32 time 1.5-1.6 at 64-128 tokens, 1.14 at 256, 0.97 at
# 512, 0.75-0.78 at 1024-2048.
FP32_FASTER_UP_TO = 256
# training.attention_precision of this process's study (use_for sets it): one study per process.
_precision = "auto"


def example_lengths(position_ids: torch.Tensor | None) -> list[int] | None:
    """Lengths of the examples in one packed row; None for anything else.

    An example starts wherever the position does not step by one, the rule transformers uses
    (``masking_utils.find_packed_sequence_indices``) to build its block-diagonal mask.
    """
    if position_ids is None or position_ids.dim() != 2 or position_ids.shape[0] != 1:
        return None
    row = position_ids[0]
    steps = torch.diff(row, prepend=row[:1] - 1)
    starts = (steps != 1).nonzero().flatten().tolist()
    if not starts:
        return None
    bounds = [0, *starts, row.shape[0]]
    return [end - start for start, end in itertools.pairwise(bounds)]


def packed_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Transformers' attention-function signature; per-example causal SDPA on a packed row."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = example_lengths(kwargs.get("position_ids"))
    plain = (
        lengths is None
        or query.shape[2] != key.shape[2]  # decoding with a cache
        or query.shape[2] != sum(lengths)
        or getattr(module, "sliding_window", None) is not None
        or kwargs.get("s_aux") is not None
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    causal = {**kwargs, "is_causal": True}
    pieces = [
        _example_attention(module, q, k, v, causal)
        for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True)
    ]
    return torch.cat(pieces, dim=1), None


def _example_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kwargs: dict[str, Any]
) -> torch.Tensor:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    # Under autocast SDPA runs in the autocast dtype whatever its inputs (RoPE hands it fp32 q and k).
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else query.dtype
    in_fp32 = runs_in_fp32(query.shape[2], fp32_max_tokens(_precision, query.device.type, cpu_flags()))
    if dtype == torch.float32 or not in_fp32:
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)[0]
    with torch.autocast("cpu", enabled=False):
        out = sdpa_attention_forward(module, query.float(), key.float(), value.float(), None, **kwargs)[0]
    return out.to(value.dtype)


def fp32_max_tokens(precision: str, device_type: str, flags: frozenset[str]) -> int | None:
    """The longest example whose attention runs in fp32 when training computes in half precision;
    0: none, None: every length. Pure: the setting and the hardware decide, never a timing.

    ``training.attention_precision`` on the CPU: ``autocast`` -> 0; ``fp32`` -> None; ``auto`` -> with
    AVX512-bf16 and no AMX, examples up to ``FP32_FASTER_UP_TO`` tokens (their power-of-two bucket),
    where PyTorch's CPU flash kernel in bf16 was measured slower than in fp32; without native bf16
    (emulated) every length; with AMX none. Off the CPU, 0 whatever the setting.
    """
    if precision == "autocast" or device_type != "cpu":
        return 0
    if precision == "fp32" or not flags & {"avx512_bf16", "amx_bf16"}:
        return None
    return 0 if "amx_bf16" in flags else FP32_FASTER_UP_TO


def runs_in_fp32(length: int, max_tokens: int | None) -> bool:
    """Whether an example of ``length`` tokens runs in fp32 under ``fp32_max_tokens``' limit."""
    return max_tokens is None or _bucket(length) <= max_tokens


def _bucket(length: int) -> int:
    return max(32, 1 << (length - 1).bit_length())


def register() -> None:
    """Makes ``NAME`` an attention implementation (SDPA's masks, for what is not a packed row)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, packed_sdpa)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_for(model: Any, precision: str = "auto") -> bool:
    """Switches a model that runs transformers' SDPA to the packed-row form, its examples' attention
    in ``precision`` (``fp32_max_tokens``); True when switched."""
    global _precision
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    _precision = precision
    register()
    model.set_attn_implementation(NAME)
    return True
