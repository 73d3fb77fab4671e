"""Samplers and pruners from config, and what a study would try first (for dry runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna

from harness.config import PrunerConfig, SamplerConfig, StudyConfig
from harness.search_space import TrialParams, suggest


def make_sampler(config: SamplerConfig) -> optuna.samplers.BaseSampler:
    if config.type == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.type == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=config.seed, n_startup_trials=config.n_startup_trials)
    if config.type == "grid":
        return optuna.samplers.BruteForceSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=config.n_startup_trials)


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    if config.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=config.min_resource)
    if config.type == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps)


def sample_params(config: StudyConfig, n_trials: int) -> list[TrialParams]:
    """Parameters the configured sampler would draw first (its seeded startup phase).

    Sampling runs inside ``study.optimize`` because samplers may call ``study.stop()`` (the grid
    sampler does once its grid is exhausted), which Optuna allows only there; an exhausted grid
    therefore yields fewer than ``n_trials`` parameter sets.
    """
    drawn: list[TrialParams] = []

    def record(trial: optuna.Trial) -> float:
        drawn.append(suggest(trial, config.search_space, config.backend))
        return 0.0  # a constant value: the sampler's first draws do not depend on results

    with _optuna_quiet():
        study = optuna.create_study(sampler=make_sampler(config.sampler))
        study.optimize(record, n_trials=n_trials, catch=())
    return drawn


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Without Optuna's "trial finished with value 0.0" lines: these trials are not real."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
