"""The study's own config sections (data, objective, sampler, MLflow, promotion) and the metrics
each backend's trials log, which the objective is checked against at load."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from harness.metrics import (
    ACCURACY,
    ANSWER_AGREEMENT,
    CONSISTENCY,
    CORRECT_AGREEMENT,
    GROUP_ACCURACY,
    SAMPLED_AGREEMENT,
    SAMPLED_ANSWER_AGREEMENT,
    STABILITY,
    TASK,
    MetricName,
    try_parse,
)
from harness.settings.frozen import Frozen
from harness.settings.synthesis import AugmentConfig


class DataConfig(Frozen):
    train_file: Path
    validation_file: Path | None = None
    validation_split: float | None = Field(default=None, gt=0, lt=1)
    shuffle_seed: int = 42
    too_long: Literal["error", "drop", "truncate"] = "error"
    # How search_space.augmentation makes its copies of the training split (never the held-out one).
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataConfig:
        if self.validation_file is not None and self.validation_split is not None:
            raise ValueError("give validation_file or validation_split, not both")
        return self


Direction = Literal["minimize", "maximize"]


class ObjectiveTerm(Frozen):
    metric: str
    direction: Direction = "minimize"


class ObjectiveConfig(Frozen):
    """One metric; or ``weights`` (a weighted sum, optimised in ``direction``); or ``metrics``
    (multi-objective: Optuna keeps the Pareto front)."""

    metric: str = "eval_loss"
    direction: Direction = "minimize"
    weights: dict[str, float] = Field(default_factory=dict)
    metrics: list[ObjectiveTerm] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> ObjectiveConfig:
        if self.weights and self.metrics:
            raise ValueError("give weights (a composite) or metrics (multi-objective), not both")
        if len(self.metrics) == 1:
            raise ValueError("a multi-objective study needs at least two metrics; use metric for one")
        return self

    @property
    def is_multi(self) -> bool:
        return bool(self.metrics)

    @property
    def directions(self) -> list[str]:
        return [t.direction for t in self.metrics] if self.metrics else [self.direction]

    @property
    def inputs(self) -> list[str]:
        """Every metric the objective reads."""
        return [t.metric for t in self.metrics] or list(self.weights) or [self.metric]

    @property
    def judge_inputs(self) -> list[str]:
        """The judge's scores (overall, per criterion, missing) that the objective reads."""
        return [n for n in self.inputs if (name := try_parse(n)) and name.family == CONSISTENCY and name.is_judge]

    @property
    def names(self) -> list[str]:
        """What the study optimises, as it is named on runs and in reports."""
        if self.metrics:
            return [t.metric for t in self.metrics]
        return ["composite" if self.weights else self.metric]


class SamplerConfig(Frozen):
    type: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    seed: int | None = 0
    n_startup_trials: int = Field(default=2, ge=0)


class MlflowConfig(Frozen):
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str | None = None
    registry_model_name: str | None = None
    # Register the best trial's model at the end of every sweep (promotion stays a separate step).
    register_best: bool = True
    # Every evaluated answer (trials, baseline, harness eval) also as a row of MLflow's GenAI
    # evaluation on its run, so the UI lists each prompt with its scores (harness.evaluation.genai_mirror).
    genai_mirror: bool = True


class PromotionConfig(Frozen):
    """When a candidate may take the alias from the champion."""

    # The paired interval's lower bound of (candidate - champion), signed so that better is
    # positive, must exceed this. Applies when the objective is a per-example score.
    min_delta: float = 0.0
    confidence_level: float = Field(default=0.9, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=2000, ge=100)


# What each backend's trials log as final metrics (see backends/hf_callbacks.py, openai_jobs.py).
TRAINING_METRICS = {
    "local": (
        "eval_loss",
        "train_loss",
        "train_loss_mean",
        "tokens_per_second_mean",
        "trained_tokens_per_epoch",
        "train_runtime_s",
        "train_samples_per_second",
    ),
    "remote": (
        "eval_loss",
        "eval_accuracy",
        "train_loss",
        "train_accuracy",
        "full_eval_loss",
        "full_eval_accuracy",
        "trained_tokens",
        "cost_usd",
    ),
}
# A local DPO trial's final evaluation adds TRL's preference metrics (curves: the same without eval_).
DPO_METRICS = tuple(
    f"eval_{kind}/{name}"
    for kind, names in (("rewards", ("chosen", "rejected", "accuracies", "margins")), ("logps", ("chosen", "rejected")))
    for name in names
)


def checked_metrics(split: str, sampled: bool) -> set[str]:
    """Task and stability metrics an evaluation logs for a split whose rows carry checks and groups."""
    accuracy = MetricName(TASK, split, ACCURACY)
    stability = [CORRECT_AGREEMENT, ANSWER_AGREEMENT] + (
        [SAMPLED_AGREEMENT, SAMPLED_ANSWER_AGREEMENT] if sampled else []
    )
    return {
        *accuracy.logged_keys(),
        MetricName(TASK, split, GROUP_ACCURACY).key,
        *(MetricName(STABILITY, split, s).key for s in stability),
    }
