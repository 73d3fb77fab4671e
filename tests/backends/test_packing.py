"""Packed rows and trained-only logits compute the same loss and gradients as examples run alone."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.backends.local import packed_attention
from harness.backends.local.packing import (
    TrainedTokensCollator,
    accepts_trained_token_batches,
    choose_packing,
    packing_works,
    trained_token_loss,
)
from harness.config import ConfigError
from harness.data.chat import Example
from harness.data.tokenize import IGNORE_INDEX, tokenize_example


def _features(tokenizer: Any) -> list[dict[str, list[int]]]:
    examples = []
    for i, (question, answer) in enumerate(
        [
            ("Reverse a list?", "Use reversed(xs)."),
            ("What is git stash?", "It shelves changes for later, " * 3),
            ("Hi", "Hello."),
        ]
    ):
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        tokenized = tokenize_example(tokenizer, Example(messages=messages, source=f"t:{i}"))
        examples.append({"input_ids": tokenized.input_ids, "labels": tokenized.labels})
    return examples


def _one_by_one(model: Any, features: list[dict[str, list[int]]]) -> torch.Tensor:
    """The reference: each example alone, token losses summed, divided by all trained targets."""
    total, count = torch.zeros(()), 0
    for feature in features:
        ids, labels = torch.tensor([feature["input_ids"]]), torch.tensor([feature["labels"]])
        logits = model(input_ids=ids).logits[0, :-1]
        targets = labels[0, 1:]
        total = total + torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
        count += int((targets != IGNORE_INDEX).sum())
    return total / count


def _grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def tiny(tiny_llama_dir: Path) -> Any:
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)


@pytest.fixture
def per_example(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """(length, ran in fp32) of every example the per-example attention ran: proof that it ran at all,
    since transformers' SDPA, its fallback, would give the same results."""
    calls: list[tuple[int, bool]] = []
    rule = packed_attention.runs_in_fp32

    def spy(length: int, max_tokens: int | None) -> bool:
        fp32 = rule(length, max_tokens)
        calls.append((length, fp32))
        return fp32

    monkeypatch.setattr(packed_attention, "runs_in_fp32", spy)
    return calls


@pytest.mark.parametrize(
    ("pack", "attention"),
    [(True, "sdpa"), (True, packed_attention.NAME), (False, "sdpa"), (False, packed_attention.NAME)],
)
def test_loss_and_gradients_equal_the_examples_run_alone(
    tiny: Any, smol_tokenizer: Any, pack: bool, attention: str, per_example: list[tuple[int, bool]]
) -> None:
    features = _features(smol_tokenizer)
    reference = copy.deepcopy(tiny)
    if attention != "sdpa":
        assert packed_attention.use_for(tiny)
    expected = _one_by_one(reference, features)
    expected.backward()

    batch = TrainedTokensCollator(pad_token_id=smol_tokenizer.pad_token_id or 0, pack=pack)(features)
    labels = batch.pop("labels")
    count = int((labels[:, 1:] != IGNORE_INDEX).sum())
    outputs = tiny(**batch)
    assert outputs.logits.shape[0] == count  # the LM head ran on trained targets only
    loss = trained_token_loss(outputs, labels, num_items_in_batch=torch.tensor(count))
    loss.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    ours, theirs = _grads(tiny), _grads(reference)
    assert ours.keys() == theirs.keys() and ours
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6, msg=name)
    lengths = [len(f["input_ids"]) for f in features]
    runs_per_example = pack and attention != "sdpa"
    assert [n for n, _ in per_example] == (lengths * tiny.config.num_hidden_layers if runs_per_example else [])


def test_a_packed_row_has_no_padding_and_restarts_positions(smol_tokenizer: Any) -> None:
    features = _features(smol_tokenizer)
    batch = TrainedTokensCollator(pad_token_id=0, pack=True)(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert "attention_mask" not in batch
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    assert [int(batch["position_ids"][0, s]) for s in starts] == [0, 0, 0]
    assert all(int(batch["labels"][0, s]) == IGNORE_INDEX for s in starts)  # never learns across examples


def test_packing_is_measured_on_the_model(tiny: Any, smol_tokenizer: Any) -> None:
    features = _features(smol_tokenizer)
    assert accepts_trained_token_batches(tiny)
    assert packing_works(tiny, features)

    class NoPositions(torch.nn.Module):  # a model that cannot take packed rows
        def forward(self, input_ids: torch.Tensor) -> Any:
            return tiny(input_ids=input_ids)

    assert not packing_works(NoPositions(), features)
    assert choose_packing("auto", NoPositions(), features)[0] is False  # falls back to padding
    with pytest.raises(ConfigError, match=r"training\.packing: on"):  # a user error, shown without a traceback
        choose_packing("on", NoPositions(), features)


def test_packed_rows_attend_within_each_example(tiny: Any, smol_tokenizer: Any) -> None:
    features = _features(smol_tokenizer)
    assert choose_packing("auto", tiny, features) == (True, "packed rows, attention per example")
    assert tiny.config._attn_implementation == packed_attention.NAME
    batch = TrainedTokensCollator(pad_token_id=0, pack=True)(features)
    assert packed_attention.example_lengths(batch["position_ids"]) == [len(f["input_ids"]) for f in features]
    assert packed_attention.example_lengths(torch.arange(5)[None]) is None  # one example: nothing to split
    assert packed_attention.example_lengths(torch.arange(5).repeat(2, 1)) is None  # padded rows


def test_packing_off_leaves_the_attention_alone(tiny: Any, smol_tokenizer: Any) -> None:
    assert choose_packing("off", tiny, _features(smol_tokenizer))[0] is False
    assert tiny.config._attn_implementation == "sdpa"


def test_a_model_without_logits_to_keep_trains_on_padded_rows(tiny: Any, smol_tokenizer: Any) -> None:
    class Plain(torch.nn.Module):  # the fallback's case: no position_ids, no logits_to_keep
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return tiny(input_ids=input_ids, attention_mask=attention_mask)

    features = _features(smol_tokenizer)
    expected = _one_by_one(copy.deepcopy(tiny), features)
    batch = TrainedTokensCollator(pad_token_id=0, pack=False, trim_logits=False)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    labels = batch.pop("labels")
    loss = trained_token_loss(Plain()(**batch), labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("fp32", [True, False])
def test_per_example_attention_under_bf16_autocast(
    tiny: Any, smol_tokenizer: Any, fp32: bool, per_example: list[tuple[int, bool]]
) -> None:
    """Either precision training.attention_precision picks gives transformers' block-mask result, gradients too."""
    batch = TrainedTokensCollator(pad_token_id=0, pack=True)(_features(smol_tokenizer))
    labels = batch.pop("labels")
    results = []
    for model in (copy.deepcopy(tiny), tiny):
        if model is tiny:
            assert packed_attention.use_for(model, "fp32" if fp32 else "autocast")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = trained_token_loss(model(**batch), labels)
        loss.backward()
        results.append((loss.item(), _grads(model)))
    (expected, theirs), (actual, ours) = results
    assert per_example and all(ran_fp32 == fp32 for _, ran_fp32 in per_example)  # the branch under test ran
    assert actual == pytest.approx(expected, rel=1e-2)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=5e-2, atol=5e-3, msg=name)
