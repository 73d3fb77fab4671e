"""The ``pruner`` section, and what measuring the objective during training asks of a study
(``evaluation.during_training``: the checkpoints pruners and ``training.keep: best`` read)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from pydantic import Field

from harness import metrics
from harness.settings.evaluation import EvaluationConfig
from harness.settings.frozen import Frozen

PrunerType = Literal["median", "percentile", "hyperband", "successive_halving", "wilcoxon", "none"]


class PrunerConfig(Frozen):
    """Optuna's pruners (harness.study.pruning). With evaluation.during_training they read the
    objective at each checkpoint, whose step is the checkpoint's number (the epoch, at epoch ends);
    without it, eval loss at every training.eval_steps (step = the training step)."""

    # None: median in a single-objective study, none in a multi-objective one (Optuna's pruners are
    # single-objective: a pruner named for a multi-objective study is refused at load).
    type: PrunerType | None = None
    # median and percentile: no pruning before this many trials finished, nor before this step.
    n_startup_trials: int = Field(default=1, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    # percentile: trials in this top percentile at a step go on (median is percentile 50).
    percentile: float = Field(default=25.0, gt=0, lt=100)
    # hyperband and successive_halving: the first rung's steps, and 1/keep at each rung (None:
    # Optuna's own default, 3 for Hyperband and 4 for successive halving).
    min_resource: int = Field(default=1, ge=1)
    reduction_factor: int | None = Field(default=None, ge=2)
    # wilcoxon: the paired signed-rank test's p-value below which a trial is pruned, and how many
    # paired prompts a checkpoint needs before any test.
    p_threshold: float = Field(default=0.1, gt=0, lt=1)
    n_startup_steps: int = Field(default=2, ge=0)


class Objective(Protocol):
    """What these rules read of harness.config.ObjectiveConfig (a layer above)."""

    metric: str
    weights: dict[str, float]

    @property
    def is_multi(self) -> bool: ...

    @property
    def inputs(self) -> list[str]: ...

    @property
    def names(self) -> list[str]: ...


def checkpoint_metrics(produced: set[str], evaluation_enabled: bool) -> set[str]:
    """Pure: what a checkpoint measures: eval loss, and held-out means of the evaluation's scorers
    and task accuracy (stability needs the whole evaluation: paraphrase groups, sampled answers)."""
    if not evaluation_enabled:
        return {"eval_loss"}
    names = [metrics.try_parse(n) for n in produced]
    return {"eval_loss"} | {
        n.key
        for n in names
        if n is not None and n.split == metrics.HELDOUT and n.suffix is None and n.family != metrics.STABILITY
    }


def multi_objective_problem(objective: Objective, pruner: PrunerConfig) -> str | None:
    """Pure: why this pruner cannot act on this objective (Optuna's pruners take one value per step)."""
    if not objective.is_multi or pruner.type in (None, "none"):
        return None
    return (
        f"pruner.type: {pruner.type} on a multi-objective study ({', '.join(objective.names)}): Optuna's"
        " pruners compare one intermediate value per step, and Optuna refuses to report any in a"
        " multi-objective study, so no trial would ever be pruned; set pruner.type: none (or leave"
        " pruner out), or optimise one objective (objective.metric, or objective.weights for a composite)"
    )


def wilcoxon_problem(objective: Objective, during_training: bool, pruner: PrunerConfig) -> str | None:
    """Pure: why the Wilcoxon pruner cannot run here; it pairs per-prompt scores of one held-out column."""
    if pruner.type != "wilcoxon":
        return None
    name = metrics.try_parse(objective.metric)
    per_prompt = (
        not (objective.weights or objective.is_multi)
        and name is not None
        and name.split == metrics.HELDOUT
        and name.suffix is None
        and name.scorer != metrics.JUDGE_MISSING
    )
    if during_training and per_prompt:
        return None
    return (
        "pruner.type: wilcoxon tests this trial's per-prompt scores at each checkpoint against the best"
        " trial's, so it needs evaluation.during_training on and an objective.metric that is one held-out"
        f" per-prompt score (consistency/heldout/<scorer>); this study has objective {objective.names}"
        f" and during_training {'on' if during_training else 'off'}"
    )


def during_training_problem(
    objective: Objective, evaluation: EvaluationConfig, measured: set[str], judge_metric: Callable[[str], bool]
) -> str | None:
    """Pure: why the objective cannot be measured at checkpoints (``measured``: what they measure)."""
    during, key = evaluation.during_training, "evaluation.during_training"
    if not during.enabled:
        return None
    if objective.is_multi:
        return (
            f"{key}: a multi-objective study has no one best checkpoint to keep or prune on (Optuna's"
            " pruners are single-objective); turn it off or optimise one metric"
        )
    missing: Sequence[str] = [n for n in objective.inputs if n not in measured and not judge_metric(n)]
    if missing:
        return (
            f"{key}: the objective reads {', '.join(missing)}, which only the final evaluation measures;"
            f" checkpoints measure {', '.join(sorted(measured))}"
        )
    held = evaluation.heldout_sample_size
    if during.heldout_size is not None and held is not None and during.heldout_size > held:
        return (
            f"{key}.heldout_size: {during.heldout_size} prompts, but the evaluation answers only"
            f" {held} held-out prompts (evaluation.heldout_sample_size); checkpoints take a subset of them"
        )
    return None
