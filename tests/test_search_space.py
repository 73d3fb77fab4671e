import optuna
import pytest
from optuna.trial import FixedTrial

from harness.backends.local.plan import micro_batches
from harness.config import LocalSearchSpace as SearchSpace
from harness.search_space import suggest


def space(**kwargs) -> SearchSpace:
    return SearchSpace.model_validate(kwargs)


def test_lora_branch_has_lora_params() -> None:
    s = space(method=["lora", "full"], lora_rank=[4, 8], epochs={"low": 1, "high": 5})
    params = suggest(FixedTrial({"method": "lora", "lora_rank": 8, "epochs": 3}), s)
    assert params.is_lora and params.lora_rank == 8 and params.epochs == 3
    assert params.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert params.as_flat_dict()["lora_rank"] == 8


def test_full_branch_has_no_lora_params() -> None:
    s = space(method=["lora", "full"], lora_rank=[4, 8])
    params = suggest(FixedTrial({"method": "full"}), s)
    assert params.lora_rank is None
    assert "lora_rank" not in params.as_flat_dict()


def test_fixed_list_and_range_kinds() -> None:
    s = space(
        epochs=2,
        batch_size=[1, 12],
        lr_multiplier={"low": 0.1, "high": 10.0, "log": True},
        dropout={"low": 0.0, "high": 0.2, "step": 0.05},
        method="full",
        training_args={"weight_decay": [0.0, 0.01]},
    )
    trial = FixedTrial({"batch_size": 12, "lr_multiplier": 2.5, "dropout": 0.05, "training_args.weight_decay": 0.01})
    params = suggest(trial, s)
    assert (params.epochs, params.batch_size, params.lr_multiplier, params.dropout) == (2, 12, 2.5, 0.05)
    assert params.training_args == {"weight_decay": 0.01}


def test_distributions_seen_by_optuna() -> None:
    s = space(
        epochs={"low": 1, "high": 3}, lr_multiplier={"low": 0.5, "high": 2.0, "log": True}, method=["lora", "full"]
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    suggest(trial, s)
    dists = trial.distributions
    assert isinstance(dists["epochs"], optuna.distributions.IntDistribution)
    assert dists["lr_multiplier"].log
    assert isinstance(dists["method"], optuna.distributions.CategoricalDistribution)


def test_choice_between_target_sets() -> None:
    s = space(lora_target_modules=[["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"]])
    params = suggest(FixedTrial({"lora_target_modules": "q_proj,v_proj"}), s)
    assert params.lora_target_modules == ("q_proj", "v_proj")


@pytest.mark.parametrize(
    ("batch", "limit", "expected"), [(12, 4, (4, 3)), (1, 4, (1, 1)), (6, 4, (3, 2)), (8, 8, (8, 1))]
)
def test_micro_batches_keep_the_effective_batch(batch: int, limit: int, expected: tuple[int, int]) -> None:
    micro, accumulation = micro_batches(batch, limit)
    assert (micro, accumulation) == expected
    assert micro * accumulation == batch
