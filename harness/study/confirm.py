"""Confirmation (``confirm: {top_k, seeds}``): when the search ends, its best configurations train again.

The search ends when its ``n_trials`` search trials are finished. Then the ``top_k`` best
configurations are queued ``seeds`` more times each, as trials of the same study that carry
``harness.repeat_of`` (the search trial) and ``harness.repeat`` (k: they train with seed + k).
Queuing happens once, under the study's lock, and queues only the repeats the study does not have
yet: any number of workers, and a resumed study, run each repeat once; a dead worker's repeat is
retried like any trial, as the same repeat. Repeats never count against ``n_trials``, are never
pruned, and do not steer the sampler. When the last of them is done, the last worker out measures
each configuration over all its runs (:mod:`harness.lifecycle.confirmed`), chooses the best on
that, and records it on the study (``harness trials`` shows it) and on the parent run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from harness.config import StudyConfig
from harness.lifecycle.confirmed import Configuration, choose, configure, top_search_trials
from harness.lifecycle.promotion import per_example
from harness.metrics import VS_BASELINE, interval_keys
from harness.storage import ATTR_CONFIRM, ATTR_CONFIRMED, ATTR_REPEAT, ATTR_REPEAT_OF, repeat_of
from harness.study.coordination import study_lock
from harness.study.resume import trials_done
from harness.tracking import Tracker

log = logging.getLogger(__name__)
PENDING = (TrialState.RUNNING, TrialState.WAITING)
SEEDS_METRIC = "best/seeds"


def search_over(config: StudyConfig, study: optuna.Study) -> bool:
    """Whether the search has its n_trials finished, none of its trials running or queued."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state in PENDING and repeat_of(t) is None for t in trials):
        return False
    return config.n_trials is not None and trials_done(study) >= config.n_trials


def enqueue_repeats(config: StudyConfig, study: optuna.Study) -> int:
    """Queue the repeats of the best configurations that the study lacks, once the search is over;
    how many were queued. Under the study's lock: workers finishing together queue them once."""
    settings = config.confirm
    if settings is None or not search_over(config, study):
        return 0
    with study_lock(config.storage, f"{config.study_name}:confirm"):
        trials = study.get_trials(deepcopy=False)
        top = top_search_trials(trials, config.objective, settings.top_k)
        had = {(repeat_of(t), int(t.user_attrs.get(ATTR_REPEAT, 0))) for t in trials if repeat_of(t) is not None}
        missing = [(t, k) for t in top for k in range(1, settings.seeds + 1) if (t.number, k) not in had]
        for trial, k in missing:
            study.enqueue_trial(trial.params, user_attrs={ATTR_REPEAT_OF: trial.number, ATTR_REPEAT: k})
        recorded = (study.user_attrs.get(ATTR_CONFIRM) or {}).get("trials", [])
        originals = sorted({*recorded, *(t.number for t in top)})
        study.set_user_attr(ATTR_CONFIRM, {"trials": originals, "seeds": settings.seeds})
    if missing:
        log.info("confirmation: %d run(s) of trials %s queued", len(missing), sorted({t.number for t, _ in missing}))
    return len(missing)


def conclude(
    config: StudyConfig,
    study: optuna.Study,
    tracker: Tracker,
    parent_id: str,
    baseline_rows: Mapping[str, list[dict[str, Any]]] | None,
) -> Configuration | None:
    """Measure every confirmed configuration over its runs, choose the best, record both; None
    (and nothing recorded) while repeats are still due or when nothing was confirmed."""
    queued = (study.user_attrs.get(ATTR_CONFIRM) or {}).get("trials", [])
    trials = study.get_trials(deepcopy=False)
    if not queued or any(t.state in PENDING and repeat_of(t) is not None for t in trials):
        return None
    spec = per_example(config.objective)
    baseline = (baseline_rows or {}).get(spec.split) if spec is not None else None
    measured = [configure(config, trials, number, tracker.client, baseline) for number in queued]
    configurations = [c for c in measured if c is not None]
    best = choose(configurations, config.objective)
    rows = [c.row(best=c is best) for c in configurations]
    study.set_user_attr(ATTR_CONFIRMED, rows)
    tracker.log_dict(parent_id, {"objective": config.objective.names[0], "configurations": rows}, "confirmation.json")
    if best is not None:
        tracker.log_metrics(parent_id, best_metrics(config.objective.names[0], best))
    return best


def best_metrics(objective: str, best: Configuration) -> dict[str, float]:
    """``best/<objective>_vs_baseline`` with its interval, and ``best/seeds``: the chosen configuration's."""
    metrics = {SEEDS_METRIC: float(best.runs)}
    if best.vs_baseline is not None:
        keys = interval_keys(f"best/{objective}_{VS_BASELINE}")
        metrics |= dict(zip(keys, (best.vs_baseline.mean, best.vs_baseline.low, best.vs_baseline.high), strict=True))
    return metrics
