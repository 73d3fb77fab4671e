"""Batched greedy answers from a model already in memory (no reload per trial).

:func:`generate` tokenizes chat prompts, batches them by length and decodes with the fast greedy loop of
:mod:`harness.greedy_decoding` where it reproduces ``model.generate(do_sample=False)``, else with
``model.generate`` itself and the same stop tokens (the fallback, and the benchmark's reference).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch

from harness.greedy_decoding import generation_copy, greedy, greedy_supported

Engine = Literal["auto", "greedy", "hf"]
_SENTINEL = "\u2063harness-answer\u2063"  # an answer text no template contains by itself


# --- stop tokens -------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The special token the chat template closes an assistant turn with (``<|im_end|>`` for ChatML)."""
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
    except Exception:  # a template that rejects this conversation: no end-of-turn token to learn
        return None
    if not isinstance(text, str) or _SENTINEL not in text:
        return None
    tail = text.split(_SENTINEL, 1)[1]
    ids = tokenizer(tail, add_special_tokens=False).input_ids if tail.strip() else []
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return int(ids[0]) if ids and ids[0] in special else None


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends an answer: the template's end-of-turn, the tokenizer's and the model's EOS."""
    generation_config = getattr(model, "generation_config", None)
    ids = [end_of_turn_id(tokenizer), tokenizer.eos_token_id]
    ids += _as_list(getattr(generation_config, "eos_token_id", None))
    ids += _as_list(getattr(getattr(model, "config", None), "eos_token_id", None))
    return list(dict.fromkeys(i for i in ids if i is not None))


# --- transformers' generate: the fallback and the benchmark's reference -------------------------------------


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


def _hf_generate(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: list[int],
    pad_id: int,
    sampling: dict[str, Any] | None = None,
) -> list[list[int]]:
    """New tokens per row: greedy, or with ``sampling`` (generate's sampling arguments) its
    ``num_return_sequences`` rows per input row, in input order."""
    device = next(model.parameters()).device
    with _left_padding(tokenizer):
        batch = tokenizer.pad({"input_ids": [list(r) for r in rows]}, return_tensors="pt").to(device)
    output = model.generate(
        **batch,
        **(sampling or {"do_sample": False}),
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids,
        pad_token_id=pad_id,
        use_cache=True,
    )
    return [row.tolist() for row in output[:, batch["input_ids"].shape[1] :]]


# --- the entry point ---------------------------------------------------------------------------------------------


def _answer_text(tokenizer: Any, ids: list[int], stops: set[int]) -> str:
    for end, token in enumerate(ids):  # cut at the first stop; generate pads finished rows after it
        if token in stops:
            ids = ids[:end]
            break
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def _prompt_rows(tokenizer: Any, prompts: Sequence[Sequence[dict[str, Any]]]) -> list[list[int]]:
    """Each chat prompt rendered with the template, ready for the assistant's answer, as token ids."""
    return [
        tokenizer(
            tokenizer.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in p], tokenize=False, add_generation_prompt=True
            ),
            add_special_tokens=False,
        ).input_ids
        for p in prompts
    ]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, Any]]],
    *,
    max_new_tokens: int = 192,
    batch_size: int = 8,
    bf16: bool = False,
    engine: Engine = "auto",
) -> list[str]:
    """Greedy (do_sample=False) answers, batched by prompt length, returned in prompt order.

    Each answer stops at the chat template's end-of-turn token or an EOS. ``bf16`` generates with bf16
    weights (for trials that train in bf16). ``batch_size`` rows decode together: on a CPU, more rows per
    batch cost little more per step than one. ``engine="hf"`` uses ``model.generate`` on the caller's
    model (autocast for bf16): the fallback, and the benchmark's reference."""
    rows = _prompt_rows(tokenizer, prompts)
    answers: list[str] = [""] * len(rows)
    if not rows:
        return answers
    stop_ids = stop_token_ids(model, tokenizer)
    stops = set(stop_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    size = max(1, batch_size)
    fast = engine == "greedy" or (engine == "auto" and greedy_supported(model))
    modes = [(module, module.training) for module in model.modules()]  # generate's eval() changes them
    runner = generation_copy(model, bf16) if fast else model
    precision = _autocast(model, bf16)
    try:
        if not fast:
            model.eval()
        with torch.inference_mode(), precision:
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                batch = [rows[i] for i in chunk]
                if fast:
                    new = greedy(runner, batch, max_new_tokens, stop_ids, pad_id)
                else:
                    new = _hf_generate(runner, tokenizer, batch, max_new_tokens, stop_ids, pad_id)
                for i, ids in zip(chunk, new, strict=True):
                    answers[i] = _answer_text(tokenizer, ids, stops)
    finally:
        for module, training in modes:
            module.training = training
    return answers


def sample(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[dict[str, Any]]],
    *,
    n: int,
    temperature: float,
    seed: int,
    max_new_tokens: int = 192,
    batch_size: int = 8,
    bf16: bool = False,
) -> list[list[str]]:
    """``n`` answers per prompt sampled at ``temperature`` (plain temperature sampling: no top-k or
    top-p cut), in prompt order, through ``model.generate``. Seeded on a forked random state: the
    same seed gives the same answers, and the caller's (training's) random state is left as it was."""
    rows = _prompt_rows(tokenizer, prompts)
    answers: list[list[str]] = [[] for _ in rows]
    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0, "num_return_sequences": n}
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    size = max(1, batch_size // n)  # each prompt decodes n rows at once
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with torch.random.fork_rng(), torch.inference_mode(), _autocast(model, bf16):
            torch.manual_seed(seed)
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                new = _hf_generate(
                    model, tokenizer, [rows[i] for i in chunk], max_new_tokens, stop_ids, pad_id, sampling
                )
                for k, i in enumerate(chunk):
                    answers[i] = [_answer_text(tokenizer, ids, set(stop_ids)) for ids in new[k * n : (k + 1) * n]]
    finally:
        for module, training in modes:
            module.training = training
    return answers


@dataclass(frozen=True)
class ModelAnswerer:
    """Greedy answers from a model in memory (the ``Answerer`` protocol), and sampled ones
    (``Sampling``): what evaluation asks of a trained model and of the untuned base."""

    model: Any
    tokenizer: Any
    max_new_tokens: int = 192  # the default cap; a call may set its own
    batch_size: int = 8
    bf16: bool = False

    def __call__(self, prompts: list[list[dict[str, Any]]], max_new_tokens: int | None = None) -> list[str]:
        return generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            batch_size=self.batch_size,
            bf16=self.bf16,
        )

    def sample(
        self,
        prompts: list[list[dict[str, Any]]],
        n: int,
        temperature: float,
        seed: int,
        max_new_tokens: int | None = None,
    ) -> list[list[str]]:
        return sample(
            self.model,
            self.tokenizer,
            prompts,
            n=n,
            temperature=temperature,
            seed=seed,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            batch_size=self.batch_size,
            bf16=self.bf16,
        )
