"""Batched greedy answers from a model already in memory (no reload per trial)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch


@contextmanager
def _left_padding(tokenizer: Any) -> Iterator[None]:
    # Decoder-only generation needs left padding; training collators use the tokenizer's default.
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = previous


def _autocast(model: Any, bf16: bool) -> Any:
    if not bf16:
        return nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, Any]]],
    *,
    max_new_tokens: int = 192,
    batch_size: int = 8,
    bf16: bool = False,
) -> list[str]:
    """Greedy (do_sample=False) answers, batched by prompt length, returned in prompt order."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in p],
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in prompts
    ]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with _left_padding(tokenizer), torch.inference_mode(), _autocast(model, bf16):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                output = model.generate(
                    **batch,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    use_cache=True,
                )
                new_tokens = output[:, batch["input_ids"].shape[1] :]
                for i, text in zip(chunk, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
                    answers[i] = text.strip()
    finally:
        model.train(was_training)
    return answers
