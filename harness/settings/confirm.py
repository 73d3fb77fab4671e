"""Confirmation: the best configurations of a finished search, trained again with further seeds."""

from __future__ import annotations

from pydantic import Field

from harness.settings.frozen import Frozen


class ConfirmConfig(Frozen):
    """When the search reaches ``n_trials``, the ``top_k`` best configurations are each trained
    ``seeds`` more times (training seeds ``training.seed + k``, or the OpenAI job's ``seed + k``,
    for k = 1..seeds) as trials of the same study; each configuration is then judged on all its
    runs, so the best one is chosen on evidence that covers training noise, not on one lucky run.
    """

    top_k: int = Field(default=1, ge=1)
    seeds: int = Field(default=2, ge=1)


def check_confirm(confirm: ConfirmConfig | None, *, multi_objective: bool, n_trials: int | None) -> None:
    """ValueError (``confirm: ...``) for a study that confirmation cannot serve."""
    if confirm is None:
        return
    if multi_objective:
        raise ValueError(
            "confirm: retrains the best configurations, but a multi-objective study has a Pareto front,"
            " not a best: give objective one metric (or weights), or take confirm out"
        )
    if n_trials is None:
        raise ValueError(
            "confirm: retrains the best configurations when the search reaches n_trials, and this study"
            " has none (it stops at timeout_minutes): set n_trials, or take confirm out"
        )
