"""What a study would try first, without running anything (for dry runs)."""

from __future__ import annotations

import optuna

from harness.config import StudyConfig
from harness.search_space import TrialParams, suggest


def sample_params(config: StudyConfig, n_trials: int) -> list[TrialParams]:
    """Parameters the configured sampler would draw first (its seeded startup phase)."""
    from harness.study import make_sampler

    study = optuna.create_study(sampler=make_sampler(config.sampler))
    drawn = []
    for _ in range(n_trials):
        trial = study.ask()
        drawn.append(suggest(trial, config.search_space))
        study.tell(trial, 0.0)
    return drawn
