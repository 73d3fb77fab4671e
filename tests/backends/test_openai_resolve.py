"""The OpenAI backend's pure resolve: the hyperparameters a job is sent, and nothing else."""

from __future__ import annotations

from harness.backends.openai.jobs import job_payload, resolve
from harness.hyperparams import TrialParams


def test_supervised_sends_the_multiplier_as_is() -> None:
    params = TrialParams(method="supervised", epochs=3, batch_size=12, lr_multiplier=2.0)
    assert resolve(params) == {"n_epochs": 3, "batch_size": 12, "learning_rate_multiplier": 2.0}


def test_dpo_adds_beta_and_the_payload_nests_it_under_its_method() -> None:
    params = TrialParams(method="dpo", epochs=1, batch_size=4, lr_multiplier=0.5, beta=0.2)
    payload = job_payload("gpt-4o-mini-2024-07-18", params, {"train": "file-1"}, "study-t0")
    assert payload["method"] == {"type": "dpo", "dpo": {"hyperparameters": {**resolve(params)}}}
    assert resolve(params)["beta"] == 0.2 and "validation_file" not in payload


def test_local_only_hyperparameters_are_never_sampled_for_openai() -> None:
    from optuna.trial import FixedTrial

    from harness.config import RemoteSearchSpace
    from harness.search_space import suggest

    space = RemoteSearchSpace.model_validate({"method": "supervised", "epochs": [1, 3]})
    params = suggest(FixedTrial({"epochs": 3}), space, "openai")
    assert params.dropout is None and params.lora_rank is None
    assert set(params.as_flat_dict()) == {"method", "epochs", "batch_size", "lr_multiplier"}
