"""Packed examples' attention precision: a fixed rule from the setting, the hardware and the length."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.backends.local import packed_attention
from harness.backends.local.packed_attention import fp32_max_tokens, runs_in_fp32
from harness.backends.local.packing import TrainedTokensCollator, trained_token_loss

EPYC = frozenset({"avx2", "avx512f", "avx512_bf16"})  # AVX512-bf16, no AMX: the measured machine
AMX = EPYC | {"amx_bf16", "amx_tile"}
NO_BF16 = frozenset({"avx2", "avx512f"})


@pytest.mark.parametrize(
    ("precision", "device", "flags", "expected"),
    [
        ("auto", "cpu", EPYC, packed_attention.FP32_FASTER_UP_TO),
        ("auto", "cpu", AMX, 0),
        ("auto", "cpu", NO_BF16, None),
        ("auto", "cuda", EPYC, 0),
        ("fp32", "cpu", AMX, None),
        ("fp32", "cuda", NO_BF16, 0),  # the fp32 branch only turns CPU autocast off
        ("autocast", "cpu", EPYC, 0),
        ("autocast", "cpu", NO_BF16, 0),
    ],
)
def test_the_rule_follows_setting_and_hardware(
    precision: str, device: str, flags: frozenset[str], expected: int | None
) -> None:
    assert fp32_max_tokens(precision, device, flags) == expected


def test_examples_go_by_their_power_of_two_bucket() -> None:
    assert packed_attention.FP32_FASTER_UP_TO == 256
    assert [runs_in_fp32(n, 256) for n in (1, 190, 256, 257, 900)] == [True, True, True, False, False]
    assert not runs_in_fp32(1, 0)
    assert runs_in_fp32(100_000, None)


@pytest.mark.parametrize("precision", ["auto", "fp32", "autocast"])
def test_packed_training_step_never_times_anything(
    tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    """A busy machine must not change numerics: no clock is read while attention picks its precision,
    and what ran is what the rule says for this machine."""
    torch.manual_seed(0)
    model: Any = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    assert packed_attention.use_for(model, precision)
    ran: list[tuple[int, bool]] = []

    def spy(length: int, max_tokens: int | None) -> bool:
        ran.append((length, runs_in_fp32(length, max_tokens)))
        return ran[-1][1]

    def no_clock() -> float:
        raise AssertionError("attention precision read a clock")

    monkeypatch.setattr(packed_attention, "runs_in_fp32", spy)
    monkeypatch.setattr(time, "perf_counter", no_clock)
    features = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids} for ids in ([5] * 40, [7] * 300)]
    batch = TrainedTokensCollator(pad_token_id=0, pack=True)(features)
    labels = batch.pop("labels")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = trained_token_loss(model(**batch), labels)
    loss.backward()
    limit = fp32_max_tokens(precision, "cpu", packed_attention.cpu_flags())
    assert ran and set(ran) == {(40, runs_in_fp32(40, limit)), (300, runs_in_fp32(300, limit))}
