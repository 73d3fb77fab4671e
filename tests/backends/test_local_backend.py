"""The local backend's trial models: LoRA on a bf16 copy of the base when trials train in bf16."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from harness import models
from harness.backends.local.backend import LocalBackend
from harness.config import load_config
from harness.greedy_decoding import generation_copy
from harness.hyperparams import TrialParams

LORA = TrialParams(
    epochs=1,
    batch_size=2,
    lr_multiplier=1.0,
    dropout=0.0,
    method="lora",
    lora_rank=4,
    lora_alpha=8,
    lora_target_modules=("q_proj", "v_proj"),
)


def _backend(study_yaml: Path, precision: str) -> LocalBackend:
    raw = yaml.safe_load(study_yaml.read_text())
    raw["training"]["precision"] = precision
    study_yaml.write_text(yaml.safe_dump(raw))
    return LocalBackend(load_config(study_yaml))


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_lora_trials_keep_frozen_base_weights_in_the_training_precision(study_yaml: Path, precision: str) -> None:
    backend = _backend(study_yaml, precision)
    base = models.load_base(backend.config.base_model)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = backend.trial_model(LORA)
    frozen = {p.dtype for n, p in model.named_parameters() if not p.requires_grad and "proj" in n}
    adapters = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert adapters == {torch.float32}  # adapters and their optimizer state stay fp32
    assert model.get_base_model().model.embed_tokens.weight.dtype == torch.float32  # embeddings and norms too
    wrapped = model.get_base_model()
    assert wrapped is backend.lora_base()
    assert wrapped.config.tie_word_embeddings == (precision == "fp32")  # the bf16 copy's head is its own
    assert base.config.tie_word_embeddings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # merging for generation finds nothing to warn about
        generation_copy(model, bf16=precision == "bf16")
    backend.release_for(LORA, model)()
    again = backend.trial_model(LORA)
    assert again.get_base_model() is wrapped  # one copy per study
    backend.release_for(LORA, again)()
    after = base.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(before[k], after[k]) for k in before)
