"""The local backend's pure resolve: what a dry run shows is what a trial trains with."""

from __future__ import annotations

import pytest

from harness.backends.local.plan import resolve
from harness.config import TrainingConfig
from harness.hyperparams import TrialParams

TRAINING = TrainingConfig(base_learning_rate={"lora": 2e-4, "full": 2e-5}, max_micro_batch_size=4)


def test_lora_learning_rate_batches_and_dropout_meaning() -> None:
    plan = resolve(
        TrialParams(method="lora", epochs=1, batch_size=12, lr_multiplier=2.0, dropout=0.1), TRAINING, bf16=True
    )
    assert plan.learning_rate == pytest.approx(4e-4)
    assert (plan.micro_batch, plan.accumulation) == (4, 3)
    assert plan.dropout_applies_to == "lora_dropout" and plan.bf16
    assert plan.as_params()["per_device_train_batch_size"] == 4


def test_full_uses_its_own_base_rate_and_every_dropout() -> None:
    plan = resolve(
        TrialParams(method="full", epochs=1, batch_size=5, lr_multiplier=0.5, dropout=0.0), TRAINING, bf16=False
    )
    assert plan.learning_rate == pytest.approx(1e-5)
    assert (plan.micro_batch, plan.accumulation) == (1, 5)  # 5 = 1 x 5: exact, never 4 + remainder
    assert plan.dropout_applies_to == "all_model_dropout" and not plan.bf16
