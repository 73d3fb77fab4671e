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

import functools
import itertools
import time
from typing import Any

import torch

NAME = "harness_packed_sdpa"


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

    if not _fp32_is_faster(query, key):
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)[0]
    with torch.autocast("cpu", enabled=False):
        out = sdpa_attention_forward(module, query.float(), key.float(), value.float(), None, **kwargs)[0]
    return out.to(value.dtype)


def _fp32_is_faster(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether this CPU runs this example's causal attention faster in fp32 than in half precision.

    Measured, not assumed: PyTorch's CPU flash kernel in bf16 took twice the fp32 time (forward
    and backward) for 190-token examples on an AVX512-bf16 EPYC, and less for 900-token ones.
    Decided once per power-of-two length, head layout and dtype, in this process.
    """
    if query.device.type != "cpu":
        return False
    # Under autocast SDPA runs in the autocast dtype whatever its inputs (RoPE hands it fp32 q and k).
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else query.dtype
    if dtype == torch.float32:
        return False
    bucket = max(32, 1 << (query.shape[2] - 1).bit_length())
    shape = (bucket, query.shape[1], key.shape[1], query.shape[3])
    return _measure_fp32_faster(shape, dtype, torch.is_grad_enabled())


@functools.cache
def _measure_fp32_faster(shape: tuple[int, int, int, int], dtype: torch.dtype, grad: bool) -> bool:
    return _attention_seconds(shape, torch.float32, grad) < _attention_seconds(shape, dtype, grad)


def _attention_seconds(shape: tuple[int, int, int, int], dtype: torch.dtype, grad: bool, repeats: int = 3) -> float:
    length, heads, kv_heads, head_dim = shape
    generator = torch.Generator().manual_seed(0)
    with torch.autocast("cpu", enabled=False), torch.set_grad_enabled(grad):
        q, k, v = (
            torch.randn(1, n, length, head_dim, generator=generator).to(dtype).requires_grad_(grad)
            for n in (heads, kv_heads, kv_heads)
        )
        best = float("inf")
        for _ in range(repeats + 1):  # the first run warms up
            start = time.perf_counter()
            out = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, enable_gqa=heads != kv_heads
            )
            if grad:
                out.sum().backward()
            best = min(best, time.perf_counter() - start)
    return best


def register() -> None:
    """Makes ``NAME`` an attention implementation (SDPA's masks, for what is not a packed row)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, packed_sdpa)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def use_for(model: Any) -> bool:
    """Switches a model that runs transformers' SDPA to the packed-row form; True when switched."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    register()
    model.set_attn_implementation(NAME)
    return True
