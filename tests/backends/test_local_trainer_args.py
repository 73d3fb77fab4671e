"""The trainer fields the harness sets are the ones config load keeps out of search_space.training_args."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from transformers import TrainingArguments

from harness.backends.local.backend import LocalBackend
from harness.backends.local.trainer_args import with_sampled_args
from harness.config import ConfigError, parse_study
from harness.hyperparams import TrialParams
from harness.settings.training import DPO_TRAINING_ARGS, HARNESS_TRAINING_ARGS

VALUES = {"epochs": 1, "batch_size": 4, "lr_multiplier": 1.0, "dropout": 0.0, "method": "full"}
PARAMS = TrialParams(**VALUES)


def test_the_table_config_load_reads_is_exactly_what_a_trial_sets(tmp_path: Path) -> None:
    config = parse_study({"study_name": "s", "data": {"train_file": "t.jsonl"}})
    backend = LocalBackend(config)
    assert set(backend.training_kwargs(PARAMS, tmp_path)) == set(HARNESS_TRAINING_ARGS)
    sampled = TrialParams(**VALUES, training_args={"weight_decay": 0.1})
    assert backend.training_kwargs(sampled, tmp_path)["weight_decay"] == 0.1


def test_every_reserved_name_is_a_real_trainer_field() -> None:
    from trl import DPOConfig

    assert set(HARNESS_TRAINING_ARGS) <= {f.name for f in dataclasses.fields(TrainingArguments)}
    assert set(DPO_TRAINING_ARGS) <= {f.name for f in dataclasses.fields(DPOConfig)} - set(HARNESS_TRAINING_ARGS)


def test_a_field_set_but_missing_from_the_table_stops_the_trial() -> None:
    with pytest.raises(RuntimeError, match="seed"):
        with_sampled_args({"seed": 0, "bf16": False}, {"bf16": "training.precision"}, {})


def test_a_sampled_field_never_replaces_the_harness_one() -> None:
    with pytest.raises(ConfigError, match="seed"):
        with_sampled_args({"seed": 0}, {"seed": "training.seed"}, {"seed": 3})
    assert with_sampled_args({"seed": 0}, {"seed": "training.seed"}, {"weight_decay": 0.1}) == {
        "seed": 0,
        "weight_decay": 0.1,
    }
