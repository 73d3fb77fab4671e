"""Pruning on the objective at checkpoints: each configured pruner's decision on scripted trials."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest

from harness.settings.pruning import PrunerConfig
from harness.study.pruning import (
    STRIDE,
    checkpoint_values,
    make_pruner,
    prompt_positions,
    prune_reason,
    report_checkpoint,
    wilcoxon_reports,
)

PROMPTS = 12
POSITIONS = prompt_positions(PROMPTS, seed=0)


def study_with(config: PrunerConfig, name: str = "s") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, direction="maximize", pruner=make_pruner(config))


def run_trial(study: optuna.Study, config: PrunerConfig, curve: Sequence[float], scores: Sequence[float]) -> int | None:
    """Report ``curve`` (the objective per checkpoint; per-prompt ``scores`` shifted by it for the
    Wilcoxon pruner); the checkpoint it was pruned at, or None when it completed."""
    trial = study.ask()
    for checkpoint, value in enumerate(curve, start=1):
        per_prompt = [s + value for s in scores]
        if report_checkpoint(trial, config, value, per_prompt, POSITIONS, checkpoint):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return checkpoint
    study.tell(trial, max(curve))
    return None


GOOD = [0.5, 0.6, 0.7]
SPREAD = [0.01 * i for i in range(PROMPTS)]  # "easy" and "hard" prompts, alike in every trial


@pytest.mark.parametrize(
    "config",
    [
        PrunerConfig(type="median", n_startup_trials=2),
        PrunerConfig(type="percentile", percentile=25.0, n_startup_trials=2),
        PrunerConfig(type="successive_halving", min_resource=1, reduction_factor=3),
        PrunerConfig(type="hyperband", min_resource=1, reduction_factor=3),
        PrunerConfig(type="wilcoxon", p_threshold=0.1, n_startup_steps=2),
    ],
    ids=lambda c: c.type,
)
def test_a_bad_trial_is_pruned_on_the_objective_by_every_pruner(config: PrunerConfig) -> None:
    study = study_with(config)
    for shift in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05):  # good trials, each the best so far
        assert run_trial(study, config, [v + shift for v in GOOD], SPREAD) is None
    pruned_at = run_trial(study, config, [0.1, 0.12, 0.15], SPREAD)
    assert pruned_at is not None
    pruned = study.trials[-1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    if config.type == "wilcoxon":  # one value per prompt, at that checkpoint's steps
        assert {step // STRIDE for step in pruned.intermediate_values} == set(range(1, pruned_at + 1))
    else:  # the objective per checkpoint, step = the checkpoint's number
        assert pruned.intermediate_values == dict(zip(range(1, pruned_at + 1), [0.1, 0.12, 0.15], strict=False))


def test_a_good_trial_goes_on_under_every_pruner() -> None:
    for kind in ("median", "percentile", "successive_halving", "wilcoxon"):
        config = PrunerConfig(type=kind, n_startup_trials=1)
        study = study_with(config, kind)
        assert run_trial(study, config, GOOD, SPREAD) is None
        assert run_trial(study, config, [v + 0.05 for v in GOOD], SPREAD) is None, kind


def test_wilcoxon_does_not_prune_a_trial_with_the_same_scores() -> None:
    config = PrunerConfig(type="wilcoxon", p_threshold=0.5, n_startup_steps=2)
    study = study_with(config)
    assert run_trial(study, config, GOOD, SPREAD) is None
    assert run_trial(study, config, GOOD, SPREAD) is None  # every paired difference is 0
    assert study.trials[-1].state == optuna.trial.TrialState.COMPLETE


def test_wilcoxon_compares_with_the_best_trial_at_the_same_checkpoint() -> None:
    """The best trial peaked at checkpoint 1 and fell at 2; a trial as good as it at checkpoint 2 is
    not pruned for being worse than its checkpoint 1 (a pooled test would see only a worse trial)."""
    config = PrunerConfig(type="wilcoxon", p_threshold=0.1, n_startup_steps=2)
    study = study_with(config)
    assert run_trial(study, config, [0.9, 0.3], SPREAD) is None
    assert run_trial(study, config, [0.3, 0.3], SPREAD) == 1  # below the best's checkpoint 1: pruned there
    trial = study.ask()  # no report at checkpoint 1 (every_steps elsewhere), the same at checkpoint 2
    assert not report_checkpoint(trial, config, 0.3, [s + 0.3 for s in SPREAD], POSITIONS, 2)


def test_wilcoxon_reads_the_best_trial_of_another_worker_from_the_storage(tmp_path: Path) -> None:
    """Two workers, two processes' Study objects on one storage: the second worker's trial is tested
    against the best trial the first one finished (its per-prompt scores come from the storage)."""
    config = PrunerConfig(type="wilcoxon", p_threshold=0.1, n_startup_steps=2)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    first = optuna.create_study(study_name="w", storage=storage, direction="maximize", pruner=make_pruner(config))
    second = optuna.load_study(study_name="w", storage=storage, pruner=make_pruner(config))
    assert run_trial(first, config, GOOD, SPREAD) is None
    assert run_trial(second, config, [0.1, 0.12, 0.15], SPREAD) == 1
    assert second.trials[-1].state == optuna.trial.TrialState.PRUNED


def test_wilcoxon_steps_follow_one_shuffled_prompt_order() -> None:
    positions = prompt_positions(5, seed=3)
    assert sorted(positions) == list(range(5)) and positions == prompt_positions(5, seed=3)
    assert prompt_positions(40, seed=0) != list(range(40))  # shuffled, not the file's order
    reports = wilcoxon_reports([0.5, None, math.nan, 0.25, 1.0], positions, checkpoint=2)
    # A prompt without a score pairs with nothing (a NaN would stop Optuna's pruner altogether).
    assert reports == [
        (0.5, 2 * STRIDE + positions[0]),
        (0.25, 2 * STRIDE + positions[3]),
        (1.0, 2 * STRIDE + positions[4]),
    ]
    values = {STRIDE + 1: 0.1, 2 * STRIDE + 1: 0.2, 2 * STRIDE + 4: 0.3, 3 * STRIDE: 0.4}
    assert checkpoint_values(values, 2) == {2 * STRIDE + 1: 0.2, 2 * STRIDE + 4: 0.3}


def test_the_reason_names_the_metric_the_checkpoint_and_the_test() -> None:
    reason = prune_reason(PrunerConfig(type="wilcoxon"), "consistency/heldout/consistency", 0.31, 2, 2.0, 18)
    assert reason.startswith("consistency/heldout/consistency 0.3100 at checkpoint 2 (epoch 2.00, step 18)")
    assert "Wilcoxon" in reason and "p < 0.1" in reason
    assert "median" in prune_reason(PrunerConfig(type="median"), "eval_loss", 1.2, 1, 1.0, 9)


def test_the_last_checkpoint_is_reported_but_never_pruned() -> None:
    """Training is over at the last checkpoint: pruning it would save nothing and lose the result."""
    config = PrunerConfig(type="median", n_startup_trials=1)
    study = study_with(config)
    assert run_trial(study, config, GOOD, SPREAD) is None
    trial = study.ask()
    assert not report_checkpoint(trial, config, 0.1, None, POSITIONS, 1, decide=False)
    assert trial.should_prune()  # the pruner would have: far below the median
    assert study.trials[-1].intermediate_values == {1: 0.1}  # later trials still meet it there


def test_successive_halving_keeps_optunas_reduction_factor_unless_set() -> None:
    """Six trials at the first rung: Optuna's default (4) promotes only the best of them, 3 the best two."""
    kept = {}
    for factor in (None, 3):
        config = PrunerConfig(type="successive_halving", reduction_factor=factor)
        study = study_with(config, f"sh{factor}")
        for value in (0.1, 0.2, 0.3, 0.4, 0.6):
            run_trial(study, config, [value, value], SPREAD)
        kept[factor] = run_trial(study, config, [0.5, 0.5], SPREAD) is None  # the second best at rung 1
    assert kept == {None: False, 3: True}
