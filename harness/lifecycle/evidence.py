"""What each side of a promotion was measured as: the candidate, and the model it must beat.

The opponent is the alias's holder (a registered version) or, for the first holder, the study's
untuned baseline. A side is a run's objective values and, when the objective is a per-example
score, that run's per-example table: the gate (:mod:`harness.lifecycle.promotion`) pairs the two
tables example by example, so a run without its table is no evidence. A run whose configuration
was confirmed (:mod:`harness.lifecycle.confirmed`) brings the tables of its other runs, and the
interval then covers training seeds as well as prompts. An opponent's runs are
searched for one measured like the candidate (same evaluation, with its table); when none is and
the objective comes from the evaluation alone, the opponent is evaluated again (never in a dry run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config import StudyConfig
from harness.evaluation.paired import PairedDiff
from harness.evaluation.tables import load_rows, table_path
from harness.lifecycle.confirmed import repeat_tables
from harness.lifecycle.promotion import per_example, signed_seeded_interval
from harness.lifecycle.selection import Scores, evaluation_only
from harness.tracking import (
    BASELINE_ROLE,
    EVAL_ROLE,
    TAG_MODEL_SPEC,
    TAG_REGISTERED,
    TAG_ROLE,
    TAG_VERSION,
)

BASE_SPEC = "base"  # how `harness eval --model` names the untuned base model
_FINISHED = "attributes.status = 'FINISHED'"
_NEWEST_FIRST = ["attributes.start_time DESC"]


@dataclass(frozen=True)
class Measured:
    """A model's objective values and, for a per-example objective, its rows of that split."""

    scores: Scores
    rows: list[dict[str, Any]] | None = None
    # The tables of the other runs of its configuration (training seeds: harness.lifecycle.confirmed).
    repeat_rows: list[list[dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Opponent:
    """The model a candidate must beat, and the runs that measured it (most trusted first)."""

    against: str  # "champion" or "baseline", as the verdict names it
    label: str  # "version 3", "the untuned baseline"
    model_spec: str  # how `harness eval --model` names it, to measure it again
    runs: Sequence[Any]
    version: str | None = None


def champion(client: Any, name: str, version: Any) -> Opponent:
    """The alias's holder: its source run, then evaluations of it, newest first."""
    runs = [client.get_run(version.run_id)] if version.run_id else []
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{TAG_REGISTERED}` = '{name}' and tags.`{TAG_VERSION}` = '{version.version}' and {_FINISHED}"
    runs += client.search_runs(experiments, query, order_by=_NEWEST_FIRST)
    number = str(version.version)
    return Opponent("champion", f"version {number}", f"models:/{name}/{number}", runs, number)


def baseline(client: Any, experiment_id: str) -> Opponent:
    """The untuned base model: the study's ``baseline`` child runs, then ``harness eval --model base``
    runs, of the candidate's experiment, newest first."""
    study = f"tags.`{TAG_ROLE}` = '{BASELINE_ROLE}' and {_FINISHED}"
    evals = f"tags.`{TAG_ROLE}` = '{EVAL_ROLE}' and tags.`{TAG_MODEL_SPEC}` = '{BASE_SPEC}' and {_FINISHED}"
    runs = [r for q in (study, evals) for r in client.search_runs([experiment_id], q, order_by=_NEWEST_FIRST)]
    return Opponent("baseline", "the untuned baseline", BASE_SPEC, runs)


def measure(config: StudyConfig, client: Any, run: Any) -> Measured:
    """A run's objective values, and its per-example table when the objective is per-example."""
    spec = per_example(config.objective)
    rows = load_rows(client, run.info.run_id, spec.split) if spec is not None else None
    repeats = repeat_tables(client, run, spec.split) if spec is not None and rows is not None else []
    return Measured(Scores.of_run(run, config.objective), rows, repeats)


def like(config: StudyConfig, client: Any, runs: Sequence[Any], candidate: Measured) -> Measured | None:
    """The first run measured like the candidate: comparable scores, and its table when one is needed."""
    objective = config.objective
    needs_rows = per_example(objective) is not None
    for run in runs:
        if not Scores.of_run(run, objective).comparable(candidate.scores, objective):
            continue  # checked before reading the table: a download per run otherwise
        found = measure(config, client, run)
        if found.rows is not None or not needs_rows:
            return found
    return None


def measure_opponent(
    config: StudyConfig, client: Any, opponent: Opponent, candidate: Measured, dry_run: bool
) -> tuple[Measured | None, str | None, str]:
    """The opponent measured like the candidate, evaluating it again when needed and allowed.

    Returns (the measure or None, the new evaluation's run id, why there is none).
    """
    found = like(config, client, opponent.runs, candidate)
    if found is not None:
        return found, None, ""
    unmeasured = f"no run measured it like the candidate ({_how_measured(config, candidate)})"
    if not evaluation_only(config.objective):
        cannot = f"{config.objective.names} cannot be re-measured; --force promotes without a comparison"
        return None, None, f"{unmeasured} and {cannot}"
    if dry_run:
        return None, None, f"{unmeasured}; without --dry-run it is re-evaluated first"
    from harness.lifecycle.evaluate import evaluate_model

    result = evaluate_model(config, opponent.model_spec)
    again = like(config, client, [client.get_run(result.run_id)], candidate)
    if again is None:
        return None, result.run_id, f"{unmeasured}, and re-evaluated ({result.run_id}) its scores still differ"
    return again, result.run_id, ""


def _how_measured(config: StudyConfig, candidate: Measured) -> str:
    spec = per_example(config.objective)
    parts = [f"eval digest {candidate.scores.eval_digest or '-'}"]
    if not evaluation_only(config.objective):
        parts.append(f"dataset digest {candidate.scores.dataset_digest or '-'}")
    if spec is not None:
        parts.append(f"a per-example table {table_path(spec.split)}")
    return ", ".join(parts)


def paired_interval(config: StudyConfig, candidate: Measured, opponent: Measured) -> tuple[PairedDiff | None, str]:
    """The candidate's paired improvement over the opponent, or (None, why not)."""
    spec = per_example(config.objective)
    if spec is None:
        return None, ""
    for side in (candidate, opponent):
        if side.rows is None:
            return None, f"run {side.scores.run_id} has no per-example table {table_path(spec.split)}"
    assert candidate.rows is not None and opponent.rows is not None  # for the type checker
    settings = config.promotion
    interval = signed_seeded_interval(
        spec,
        [candidate.rows, *candidate.repeat_rows],
        [opponent.rows, *opponent.repeat_rows],
        level=settings.confidence_level,
        resamples=settings.bootstrap_resamples,
    )
    if interval is None:
        return None, f"the {table_path(spec.split)} tables share no example scored on {', '.join(spec.weights)}"
    return interval, ""
