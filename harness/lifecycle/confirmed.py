"""Confirmed configurations: a configuration judged on all its training runs, not on its luckiest.

When a search ends, its best configurations are trained again with further seeds
(:mod:`harness.study.confirm`; each repeat a trial tagged ``harness.repeat_of`` = the search trial).
A configuration's runs are its search trial and those repeats. Its mean objective over them
chooses the best configuration, and the two-level bootstrap
(:func:`~harness.evaluation.seeds.seeded_bootstrap`) over its runs' per-example tables gives its
interval against the untuned baseline, covering training seeds as well as prompts. Promotion
reads the same runs (:func:`repeat_tables`), so its verdict covers training noise too.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from harness.config import ObjectiveConfig, StudyConfig
from harness.evaluation.paired import PairedDiff
from harness.evaluation.seeds import SeededDiff
from harness.evaluation.tables import load_rows
from harness.lifecycle.promotion import per_example, signed_seeded_interval
from harness.storage import ATTR_CONFIRMED, ATTR_REPEAT_OF, ATTR_RUN_ID, repeat_of
from harness.tracking import TAG_EVAL_DIGEST, TAG_PROMOTION_INTERVAL, TAG_PROMOTION_SEEDS, TAG_TRIAL

Rows = list[dict[str, Any]]


def _finite(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)


def top_search_trials(trials: Sequence[FrozenTrial], objective: ObjectiveConfig, k: int) -> list[FrozenTrial]:
    """Pure: the search trials (repeats left out) of the ``k`` best distinct configurations, best
    first; ties: lower number. A sampler may try one configuration twice, with the same seed: a
    deterministic trial then repeats its result, which is no evidence, so it counts once."""
    sign = 1.0 if objective.direction == "minimize" else -1.0
    search = [t for t in trials if repeat_of(t) is None and _finite(t)]
    ranked = sorted(search, key=lambda t: (sign * float(t.value or 0.0), t.number))
    distinct = {json.dumps(t.params, sort_keys=True): t for t in reversed(ranked)}  # the best one stays
    return sorted(distinct.values(), key=ranked.index)[:k]


def configuration_trials(trials: Sequence[FrozenTrial], original: int) -> list[FrozenTrial]:
    """Pure: the COMPLETE runs of search trial ``original``'s configuration: itself, then its repeats."""
    return [t for t in trials if _finite(t) and (t.number == original or repeat_of(t) == original)]


@dataclass(frozen=True)
class Configuration:
    """One configuration's evidence over its runs (training seeds)."""

    trial: int  # the search trial that found it
    trials: tuple[int, ...]  # its COMPLETE runs: the search trial and its repeats
    mean: float  # the objective's mean over those runs
    seed_sd: float  # its standard deviation over them (0 for one run)
    vs_baseline: SeededDiff | None  # over runs and prompts, better is +; None without tables or baseline
    params: Mapping[str, Any]

    @property
    def runs(self) -> int:
        return len(self.trials)

    def row(self, best: bool) -> dict[str, Any]:
        """As JSON: the study's ``harness.confirmed`` attr and the parent run's confirmation.json."""
        diff = self.vs_baseline
        return {
            "trial": self.trial,
            "trials": list(self.trials),
            "runs": self.runs,
            "mean": self.mean,
            "seed_sd": self.seed_sd,
            "vs_baseline": None if diff is None else [diff.mean, diff.low, diff.high],
            "level": None if diff is None else diff.level,
            "prompts": None if diff is None else diff.n,
            "params": dict(self.params),
            "best": best,
        }


def configure(
    config: StudyConfig, trials: Sequence[FrozenTrial], original: int, client: Any, baseline: Rows | None
) -> Configuration | None:
    """Search trial ``original``'s configuration measured over its runs; None when none is complete."""
    runs = configuration_trials(trials, original)
    if not runs:
        return None
    values = [float(t.value or 0.0) for t in runs]
    spec = per_example(config.objective)
    diff = None
    if spec is not None and baseline is not None:
        found = [load_rows(client, str(t.user_attrs.get(ATTR_RUN_ID, "")), spec.split) for t in runs]
        tables = [rows for rows in found if rows is not None]
        settings = config.evaluation
        if tables:
            level, resamples = settings.confidence_level, settings.bootstrap_resamples
            diff = signed_seeded_interval(spec, tables, [baseline], level=level, resamples=resamples)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return Configuration(original, tuple(t.number for t in runs), statistics.fmean(values), sd, diff, runs[0].params)


def choose(configurations: Sequence[Configuration], objective: ObjectiveConfig) -> Configuration | None:
    """Pure: the best mean, among configurations with more than one run when any has (a repeat
    that failed leaves one run, whose luck the others' means no longer carry); ties: lower trial."""
    confirmed = [c for c in configurations if c.runs > 1] or list(configurations)
    sign = 1.0 if objective.direction == "minimize" else -1.0
    return min(confirmed, key=lambda c: (sign * c.mean, c.trial), default=None)


def confirmed_best(study: Any) -> FrozenTrial | None:
    """The search trial of the configuration the confirmation chose, or None (no confirmation)."""
    rows = study.user_attrs.get(ATTR_CONFIRMED) or []
    chosen = next((row["trial"] for row in rows if row.get("best")), None)
    if chosen is None:
        return None
    return next((t for t in study.get_trials(deepcopy=False) if t.number == chosen), None)


def repeat_tables(client: Any, run: Any, split: str) -> list[Rows]:
    """The per-example tables of the other FINISHED runs of ``run``'s configuration: the search
    trial and its repeats under the same parent run, measured like it (eval digest). Empty for a
    run that is no trial, or whose configuration was never confirmed."""
    tags = run.data.tags
    original, parent = tags.get(ATTR_REPEAT_OF) or tags.get(TAG_TRIAL), tags.get("mlflow.parentRunId")
    if original is None or parent is None or TAG_EVAL_DIGEST not in tags:
        return []
    same = f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'FINISHED'"
    same += f" and tags.`{TAG_EVAL_DIGEST}` = '{tags[TAG_EVAL_DIGEST]}'"
    found = client.search_runs([run.info.experiment_id], f"{same} and tags.`{ATTR_REPEAT_OF}` = '{original}'")
    if not found and ATTR_REPEAT_OF not in tags:
        return []  # no repeat: the search trial alone
    found += client.search_runs([run.info.experiment_id], f"{same} and tags.`{TAG_TRIAL}` = '{original}'")
    others = sorted({r.info.run_id for r in found} - {run.info.run_id})
    tables = [load_rows(client, run_id, split) for run_id in others]
    return [rows for rows in tables if rows is not None]


def evidence_tags(interval: PairedDiff, context: Mapping[str, Any]) -> dict[str, str]:
    """A promoted version's record of the interval that decided: all of it as JSON (mean, ends,
    prompts, training seeds, seed sd, and ``context``), and how many training runs it covers."""
    seeds = interval.n_seeds if isinstance(interval, SeededDiff) else 1
    return {
        TAG_PROMOTION_INTERVAL: json.dumps({**asdict(interval), **context}),
        TAG_PROMOTION_SEEDS: str(seeds),
    }
