"""``harness compare A B``: find the two runs, read their answer tables, log the page on the study.

A side is a trial number, ``baseline``, an MLflow run id, or a registered version
(``models:/NAME/3``, ``models:/NAME@champion``, ``NAME@champion``). Trial numbers and ``baseline``
are looked up in the study's experiment: the one named by ``--study``, else the experiment of the
other side, else the only study in the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.config import ConfigError
from harness.evaluation.side_by_side import Comparison, pair, render_html
from harness.evaluation.tables import load_rows
from harness.metrics import HELDOUT, TRAIN
from harness.tracking import BASELINE_ROLE, PARENT_ROLE, TAG_ROLE, TAG_TRIAL

VERSION = re.compile(r"^(?:models:/)?(?P<name>[^/@:]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
SPLITS = (HELDOUT, TRAIN)


class CompareError(ConfigError):
    """A side that names no run, or a run without answer tables; the message says which."""


@dataclass(frozen=True)
class Side:
    spec: str
    run_id: str
    experiment_id: str
    label: str


@dataclass(frozen=True)
class Compared:
    comparison: Comparison
    sides: tuple[Side, Side]
    artifact: str | None  # where the page went on the parent run (None: no parent run found)
    parent_run_id: str | None


def _version_run(client: Any, spec: str) -> tuple[str, str] | None:
    """(run id, label) of a registered version spec; None when ``spec`` is not one."""
    from mlflow.exceptions import MlflowException

    match = VERSION.match(spec)
    if match is None or (not spec.startswith("models:/") and match["alias"] is None):
        return None
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
    except MlflowException:
        raise CompareError(f"{spec}: no such registered model version in this tracking store") from None
    if not version.run_id:
        raise CompareError(f"{spec}: version {version.version} was registered without a run: no answers to compare")
    return version.run_id, f"{name}/{version.version}"


def _study_experiment(client: Any, study: str | None, known: list[str]) -> str:
    if study is not None:
        found = client.get_experiment_by_name(study)
        if found is None:
            raise CompareError(f"no experiment named {study!r} (the study's name) in this tracking store")
        return str(found.experiment_id)
    if known:
        return known[0]
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, f"tags.`{TAG_ROLE}` = '{PARENT_ROLE}'") if experiments else []
    studies = sorted({r.info.experiment_id for r in parents})
    if len(studies) != 1:
        raise CompareError(f"{len(studies)} studies in this tracking store: say which with --study NAME")
    return studies[0]


def _in_study(client: Any, spec: str, experiment_id: str) -> tuple[str, str]:
    if spec == BASELINE_ROLE:
        query, label = f"tags.`{TAG_ROLE}` = '{BASELINE_ROLE}'", "baseline"
    else:
        query, label = f"tags.`{TAG_TRIAL}` = '{int(spec)}'", f"trial {int(spec)}"
    runs = client.search_runs(
        [experiment_id], f"{query} and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"]
    )
    if not runs:
        raise CompareError(f"{spec}: no finished {label} run in this study's experiment")
    return runs[0].info.run_id, label


def resolve(client: Any, specs: tuple[str, str], study: str | None) -> tuple[Side, Side]:
    """Both sides as runs; trial numbers and ``baseline`` in the study's experiment."""
    direct: dict[str, tuple[str, str]] = {}
    for spec in specs:
        if spec == BASELINE_ROLE or spec.isdigit():
            continue
        direct[spec] = _version_run(client, spec) or (spec, f"run {spec[:8]}")
    experiments = {spec: _experiment_of(client, spec, run_id) for spec, (run_id, _) in direct.items()}
    needs_study = any(s == BASELINE_ROLE or s.isdigit() for s in specs)
    experiment = _study_experiment(client, study, list(experiments.values())) if needs_study else None
    sides = []
    for spec in specs:
        run_id, label = direct[spec] if spec in direct else _in_study(client, spec, str(experiment))
        sides.append(Side(spec, run_id, experiments.get(spec) or str(experiment), label))
    return sides[0], sides[1]


def _experiment_of(client: Any, spec: str, run_id: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_run(run_id).info.experiment_id)
    except MlflowException:
        raise CompareError(
            f"{spec}: not a trial number, 'baseline', a run id or a registered version (models:/NAME/3, NAME@alias)"
        ) from None


def tables(client: Any, side: Side) -> dict[str, list[dict[str, Any]]]:
    found = {split: load_rows(client, side.run_id, split) for split in SPLITS}
    out = {split: rows for split, rows in found.items() if rows is not None}
    if not out:
        raise CompareError(f"{side.spec}: run {side.run_id} has no answer tables (eval/heldout.json, eval/train.json)")
    return out


def parent_run(client: Any, experiment_id: str) -> str | None:
    runs = client.search_runs([experiment_id], f"tags.`{TAG_ROLE}` = '{PARENT_ROLE}'", max_results=1)
    return runs[0].info.run_id if runs else None


def artifact_name(sides: tuple[Side, Side]) -> str:
    """``compare/trial-3_vs_baseline.html``: one page per pair, replaced when compared again."""
    safe = [re.sub(r"[^A-Za-z0-9_.-]+", "-", s.label).strip("-") for s in sides]
    return f"compare/{safe[0]}_vs_{safe[1]}.html"


def compare(client: Any, specs: tuple[str, str], study: str | None = None, log: bool = True) -> Compared:
    """Pair both sides' answers; with ``log``, the HTML page goes onto the study's parent run."""
    sides = resolve(client, specs, study)
    comparison = pair(tables(client, sides[0]), tables(client, sides[1]))
    if not comparison.pairs:
        raise CompareError(f"{specs[0]} and {specs[1]} answered no prompt in common (different evaluations?)")
    parent = parent_run(client, sides[0].experiment_id) or parent_run(client, sides[1].experiment_id)
    artifact = None
    if log and parent is not None:
        artifact = artifact_name(sides)
        title = f"{sides[0].label} vs {sides[1].label}"
        page = render_html(comparison, (sides[0].label, sides[1].label), title)
        client.log_text(parent, page, artifact)
    return Compared(comparison, sides, artifact, parent)
