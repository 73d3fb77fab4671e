"""Sampled answers (answer stability): n per prompt, repeatable by seed, the caller's random state untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from harness.answering import Sampling
from harness.generation import ModelAnswerer, generate, sample

QUESTIONS = ["Which port does the gateway use?", "Name the retry flag.", "Hi"]


def prompts() -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": q}] for q in QUESTIONS]


@pytest.fixture
def tiny(tiny_llama_dir: Path) -> Any:
    """The tiny Llama with wider random weights, so different draws give different answers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_llama_dir)
    config.tie_word_embeddings, config.initializer_range = False, 0.2
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_sampling_gives_n_answers_per_prompt_repeatably(tiny: Any, smol_tokenizer: Any) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    drawn = sample(tiny, smol_tokenizer, prompts(), n=3, temperature=1.5, seed=7, max_new_tokens=6, batch_size=4)
    assert torch.rand(1) == before  # the caller's random state is where it was
    assert [len(answers) for answers in drawn] == [3, 3, 3]
    again = sample(tiny, smol_tokenizer, prompts(), n=3, temperature=1.5, seed=7, max_new_tokens=6, batch_size=4)
    assert again == drawn
    other = sample(tiny, smol_tokenizer, prompts(), n=3, temperature=1.5, seed=8, max_new_tokens=6, batch_size=4)
    assert other != drawn
    assert any(len(set(answers)) > 1 for answers in drawn)  # a high temperature does vary the answers


def test_model_answerer_answers_greedily_and_samples(tiny: Any, smol_tokenizer: Any) -> None:
    answerer = ModelAnswerer(tiny, smol_tokenizer, max_new_tokens=6, batch_size=2)
    assert isinstance(answerer, Sampling)
    assert answerer(prompts()) == generate(tiny, smol_tokenizer, prompts(), max_new_tokens=6, batch_size=2)
    assert [len(a) for a in answerer.sample(prompts(), 2, 1.0, 0, max_new_tokens=4)] == [2, 2, 2]
