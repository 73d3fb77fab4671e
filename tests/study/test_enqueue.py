"""Warm starts (``enqueue:``): known-good configurations, checked against the search space at load,
run as the study's first trials, once, whatever the resumes; the search samples the rest."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from harness.config import ConfigError, load_config, parse_study
from harness.settings.enqueue import optuna_params
from harness.storage import ATTR_ENQUEUED
from harness.study import loop
from harness.study.sampling import sample_params
from tests.study.sweeps import SeededBackend, sweep_config, use_backend

SPACE = {
    "method": ["lora", "full"],
    "epochs": [1, 3],
    "lr_multiplier": {"low": 0.5, "high": 4.0, "log": True},
    "dropout": 0.0,
    "lora_rank": [8, 16],
    "lora_target_modules": [["q_proj", "v_proj"], ["all-linear"]],
}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{lr_multiplier: 9.0}", r"enqueue\[0\]\.lr_multiplier: 9.0 is not a number in the search space's range"),
        ("{epochs: 2}", r"enqueue\[0\]\.epochs: 2 is not among the search space's values \[1, 3\]"),
        ("{dropout: 0.1}", r"enqueue\[0\]\.dropout: 0.1 is not among the search space's values \[0\]"),
        ("{warmup: 1}", r"enqueue\[0\]\.warmup: not a key of this study's search space"),
        ("{method: full, lora_rank: 8}", r"enqueue\[0\]\.lora_rank: only sampled when method is lora, not full"),
        ("{lora_target_modules: [k_proj]}", r"enqueue\[0\]\.lora_target_modules: \['k_proj'\] is not among"),
    ],
)
def test_an_entry_outside_the_search_space_is_refused_at_load(study_yaml: Path, entry: str, message: str) -> None:
    space = "search_space={method: [lora, full], epochs: [1, 3], lr_multiplier: {low: 0.5, high: 4.0}, dropout: 0.0}"
    with pytest.raises(ConfigError, match=message):
        load_config(study_yaml, [space, "n_trials=3", f"enqueue=[{entry}]"])


def test_enqueue_must_leave_the_search_a_trial(study_yaml: Path) -> None:
    with pytest.raises(ConfigError, match=r"enqueue: 2 configuration\(s\) for n_trials 2 leave the search no trial"):
        load_config(study_yaml, ["n_trials=2", "enqueue=[{method: lora}, {method: full}]"])
    assert len(load_config(study_yaml, ["n_trials=3", "enqueue=[{method: lora}, {method: full}]"]).enqueue) == 2


def test_entries_become_the_parameters_optuna_samples(tmp_path: Path) -> None:
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/o.db", search_space=SPACE, n_trials=3)
    entry = {"method": "lora", "epochs": 3, "lr_multiplier": 2, "dropout": 0.0, "lora_target_modules": ["all-linear"]}
    # The fixed dropout is not an Optuna parameter; a target set travels as one string, as suggest() gives it.
    expected = {"method": "lora", "epochs": 3, "lr_multiplier": 2, "lora_target_modules": "all-linear"}
    assert optuna_params(config.search_space, entry) == expected


def test_enqueued_configurations_run_first_once_and_the_search_samples_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = [{"method": "full", "epochs": 3, "lr_multiplier": 3.5}, {"method": "lora", "lora_rank": 16}]
    settings = {"search_space": SPACE, "n_trials": 4, "enqueue": known, "sampler": {"type": "tpe", "seed": 1}}
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db", **settings)
    drawn = sample_params(config, 3)  # the dry run shows the enqueued configurations first
    assert (drawn[0].method, drawn[0].epochs, drawn[0].lr_multiplier) == ("full", 3, 3.5)
    assert (drawn[1].method, drawn[1].lora_rank) == ("lora", 16)

    use_backend(monkeypatch, SeededBackend())
    result = loop.run_sweep(config)
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [t.user_attrs.get(ATTR_ENQUEUED) for t in trials] == [0, 1, None, None]
    assert {k: trials[0].params[k] for k in known[0]} == known[0]
    assert trials[1].params["method"] == "lora" and trials[1].params["lora_rank"] == 16
    assert "lr_multiplier" in trials[1].params and "epochs" in trials[1].params  # sampled: not in the entry

    more = parse_study({**config.model_dump(mode="json", exclude_defaults=True), "n_trials": 5})
    again = loop.run_sweep(more)  # resumed: one more sampled trial, nothing queued again
    assert again.ran == 1 and [t.user_attrs.get(ATTR_ENQUEUED) for t in again.study.get_trials()][2:] == [None] * 3
    assert len(optuna.load_study(study_name="s", storage=config.storage).get_trials()) == 5
