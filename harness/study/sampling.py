"""Samplers from config (pruners: harness.study.pruning), and what a study would try first (for dry runs)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from harness.config import SamplerConfig, StudyConfig
from harness.search_space import TrialParams, suggest
from harness.settings.enqueue import optuna_params
from harness.storage import ATTR_ENQUEUED, ATTR_RETRY_OF, repeat_of

# The trial's user attr and its MLflow run's tag: the seed its sampler drew with.
SEED_KEY = "harness.sampler_seed"


def make_sampler(config: SamplerConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded afresh for every trial (see ``PerTrialSeed``)."""
    return PerTrialSeed(config)


def trial_seed(config: SamplerConfig, number: int) -> int | None:
    """Pure: trial ``number``'s sampler seed, from the study's seed and the trial number.

    Trial numbers are unique within a study, so every trial draws from its own stream whichever
    worker runs it, and the same study seed gives trial ``number`` the same seed on every run.
    None when the study is unseeded (every trial then draws from fresh entropy).
    """
    if config.seed is None:
        return None
    digest = hashlib.blake2b(f"{config.seed}:{number}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")  # below 2**32, as numpy's RandomState requires


def seed_of(trial: optuna.Trial, config: SamplerConfig) -> int | None:
    """The seed ``trial``'s parameters were drawn with: its own, or, for a retry (which runs another
    trial's parameters again), the original's."""
    original = trial.user_attrs.get(ATTR_RETRY_OF)  # an interrupted trial queued again
    if original is not None:
        recorded = trial.study.get_trials(deepcopy=False)[original].user_attrs.get(SEED_KEY)
        return recorded if recorded is not None else trial_seed(config, original)
    if SEED_KEY in trial.user_attrs:  # a dead worker's trial retried: its attrs came with it
        return trial.user_attrs[SEED_KEY]
    return trial_seed(config, trial.number)


def seeded_sampler(config: SamplerConfig, seed: int | None) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler with ``seed``."""
    if config.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.type == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=config.n_startup_trials)
    if config.type == "grid":
        return optuna.samplers.BruteForceSampler(seed=seed)
    # constant_liar: a trial running in another worker counts as a poor result, so concurrent
    # workers steer away from each other's parameters instead of converging on the same ones.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.n_startup_trials, constant_liar=True)


class PerTrialSeed(optuna.samplers.BaseSampler):
    """Optuna's sampler, built for each trial with that trial's seed (``trial_seed``).

    One sampler per worker, seeded with the study's seed, would make N workers propose the same
    parameters, and a resumed study draw its first trials' again. Every sampler here reads its
    history from the study, so a sampler per trial loses nothing; the seed is the trial's own.
    """

    def __init__(self, config: SamplerConfig) -> None:
        self.config = config
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}
        self._guard = threading.Lock()  # trials of one worker may run in threads (parallel_trials)

    def __str__(self) -> str:
        return f"PerTrialSeed({self.config.type}, seed={self.config.seed})"

    def _of(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        with self._guard:
            if trial.number not in self._by_trial:
                self._by_trial[trial.number] = seeded_sampler(self.config, trial_seed(self.config, trial.number))
            return self._by_trial[trial.number]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._of(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        with self._guard:
            sampler = self._by_trial.pop(trial.number, None)
        # A trial this worker did not sample (a dead worker's, failed here) needs none. A confirmation
        # repeat is no part of the search: a grid it completes again must not stop the study.
        if sampler is not None and repeat_of(trial) is None:
            sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: Optuna reseeds for threads (n_jobs > 1), but each trial has its own seed."""


def enqueue_warm_starts(config: StudyConfig, study: optuna.Study) -> int:
    """Queue the config's ``enqueue`` configurations as the first trials of a study that has none;
    how many were queued. A study with trials (resumed, or joined by another worker, which runs this
    under the study's setup lock) gets none: each is queued once, as the search's first trials.
    """
    if not config.enqueue or study.get_trials(deepcopy=False):
        return 0
    for index, entry in enumerate(config.enqueue):
        study.enqueue_trial(optuna_params(config.search_space, entry), user_attrs={ATTR_ENQUEUED: index})
    return len(config.enqueue)


def sample_params(config: StudyConfig, n_trials: int) -> list[TrialParams]:
    """Parameters the study's first trials would draw (its seeded startup phase): trial k here has
    trial k's seed, so these are what trials 0..n-1 of the real study try, with any number of workers.

    Sampling runs inside ``study.optimize`` because samplers may call ``study.stop()`` (the grid
    sampler does once its grid is exhausted), which Optuna allows only there; an exhausted grid
    therefore yields fewer than ``n_trials`` parameter sets.
    """
    drawn: list[TrialParams] = []

    def record(trial: optuna.Trial) -> float:
        drawn.append(suggest(trial, config.search_space))
        return 0.0  # a constant value: the sampler's first draws do not depend on results

    with _optuna_quiet():
        study = optuna.create_study(sampler=make_sampler(config.sampler))
        enqueue_warm_starts(config, study)
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
