"""Pruners from config, and what a trial reports to them at each checkpoint.

With ``evaluation.during_training`` a trial reports the objective at each checkpoint, step = the
checkpoint's number (the epoch, at epoch ends), so trials of any batch size meet at the same steps
and Hyperband's resources are epochs. The Wilcoxon pruner instead gets one value per held-out
prompt: step ``checkpoint * STRIDE + position``, the position a fixed-seed shuffle gives each prompt,
the same in every trial, so Optuna pairs a prompt's scores across trials at the same checkpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from harness.settings.pruning import PrunerConfig

# Wilcoxon steps of checkpoint k are k * STRIDE + position: room for any held-out set.
STRIDE = 1_000_000


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The configured Optuna pruner (the Wilcoxon one narrowed to one checkpoint at a time)."""
    if config.type == "none":
        return optuna.pruners.NopPruner()
    rungs: dict[str, int] = {"min_resource": config.min_resource}
    if config.reduction_factor is not None:  # else Optuna's default for the pruner
        rungs["reduction_factor"] = config.reduction_factor
    if config.type == "hyperband":
        return optuna.pruners.HyperbandPruner(**rungs)
    if config.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**rungs)
    if config.type == "wilcoxon":
        # Experimental in Optuna since 3.6: known, and tested here (the CLI silences the warning).
        return CheckpointWilcoxonPruner(p_threshold=config.p_threshold, n_startup_steps=config.n_startup_steps)
    percentile = config.percentile if config.type == "percentile" else 50.0  # median (the default)
    return optuna.pruners.PercentilePruner(
        percentile, n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps
    )


def prompt_positions(count: int, seed: int) -> list[int]:
    """Pure: prompt i's position in the one shuffled order every trial reports in."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    positions = [0] * count
    for position, prompt in enumerate(order):
        positions[prompt] = position
    return positions


def wilcoxon_reports(
    scores: Sequence[float | None], positions: Sequence[int], checkpoint: int
) -> list[tuple[float, int]]:
    """Pure: (value, step) per scored prompt of a checkpoint; a prompt without a score is left out,
    so it pairs with nothing (Optuna's pruner would never prune a trial with a NaN)."""
    return [
        (float(score), checkpoint * STRIDE + position)
        for score, position in zip(scores, positions, strict=True)
        if score is not None and math.isfinite(score)
    ]


def checkpoint_values(values: Mapping[int, float], checkpoint: int) -> dict[int, float]:
    """Pure: the per-prompt values a trial reported at ``checkpoint`` (Wilcoxon steps)."""
    return {step: value for step, value in values.items() if step // STRIDE == checkpoint}


@dataclass(frozen=True)
class _TrialView:
    """What Optuna's WilcoxonPruner reads of a trial."""

    number: int
    intermediate_values: dict[int, float]


@dataclass(frozen=True)
class _StudyView:
    """What Optuna's WilcoxonPruner reads of a study."""

    direction: StudyDirection
    best_trial: _TrialView


class CheckpointWilcoxonPruner(optuna.pruners.WilcoxonPruner):
    """Optuna's paired signed-rank test of this trial's per-prompt scores at its latest checkpoint
    against the best trial's at the same checkpoint (not pooled over earlier checkpoints, whose
    scores say less about where the trial is going)."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step is None:
            return False
        try:
            best = study.best_trial
        except ValueError:  # no complete trial yet: nothing to compare with
            return False
        checkpoint = trial.last_step // STRIDE
        view = _StudyView(
            study.direction,
            _TrialView(best.number, checkpoint_values(best.intermediate_values, checkpoint)),
        )
        if not view.best_trial.intermediate_values:  # the best trial never reached this checkpoint
            return False
        current = _TrialView(trial.number, checkpoint_values(trial.intermediate_values, checkpoint))
        return super().prune(view, current)  # type: ignore[arg-type]


def prune_reason(config: PrunerConfig, metric: str, value: float, checkpoint: int, epoch: float, step: int) -> str:
    """Pure: why a trial was pruned, as its run's harness.pruned_reason says it."""
    test = {
        "wilcoxon": f"its per-prompt scores are worse than the best trial's at the same checkpoint (Wilcoxon"
        f" signed-rank p < {config.p_threshold})",
        "hyperband": "not among the best 1/reduction_factor of its Hyperband bracket at this rung",
        "successive_halving": "not among the best 1/reduction_factor of trials at this rung",
        "median": "worse than the median of earlier trials at this checkpoint",
        "percentile": f"outside the top {config.percentile:g}% of earlier trials at this checkpoint",
    }.get(config.type or "median", "pruned")
    return f"{metric} {value:.4f} at checkpoint {checkpoint} (epoch {epoch:.2f}, step {step}): {test}"


def report_checkpoint(
    trial: optuna.Trial,
    config: PrunerConfig,
    value: float,
    per_prompt: Sequence[float | None] | None,
    positions: Sequence[int],
    checkpoint: int,
    decide: bool = True,
) -> bool:
    """Report a checkpoint to the pruner; whether it says to prune (never asked unless ``decide``).
    The Wilcoxon pruner takes the per-prompt scores; the others the objective value, at step = the
    checkpoint's number."""
    if config.type == "wilcoxon":
        for score, step in wilcoxon_reports(per_prompt or [], positions, checkpoint):
            trial.report(score, step)
    else:
        trial.report(value, checkpoint)
    return decide and bool(trial.should_prune())
