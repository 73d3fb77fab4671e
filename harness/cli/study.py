"""Study commands: run a sweep, list its trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.cli.common import (
    DEFAULT_STORAGE,
    app,
    console,
    fail,
    load,
    progress_bars,
    quiet_libraries,
    setup_errors,
    short,
    terminate_as_interrupt,
)
from harness.config import StudyConfig


@app.command()
def sweep(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    study_name: Annotated[str | None, typer.Option(help="override study_name")] = None,
    n_trials: Annotated[int | None, typer.Option(help="total trials the study should reach")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL")] = None,
    dry_run: Annotated[bool, typer.Option(help="validate, estimate and show the first trials; train nothing")] = False,
    allow_weak_judge: Annotated[
        bool, typer.Option(help="let a judge that fails its check (harness judge-check) into the objective")
    ] = False,
) -> None:
    """Run (or resume) an Optuna study whose trials fine-tune and log to MLflow."""
    if allow_weak_judge:
        overrides = [*(overrides or []), "evaluation.judge.allow_weak=true"]
    extra = [
        f"{key}={json.dumps(value)}"
        for key, value in (
            ("study_name", study_name),
            ("n_trials", n_trials),
            ("mlflow.tracking_uri", tracking_uri),
            ("storage", storage),
        )
        if value is not None
    ]
    config = load(config_path, [*(overrides or []), *extra])
    quiet_libraries()
    if dry_run:
        _dry_run(config)
        return
    from harness.study import run_sweep

    try:
        with terminate_as_interrupt(), progress_bars() as progress:
            result = run_sweep(config, progress=progress)
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: runs closed; rerun the same command to resume")
        raise typer.Exit(130) from None
    if result.reconciled:
        console.print(f"re-queued trials whose process had died: {result.reconciled}")
    _print_trials(result.study)
    console.print(f"MLflow parent run {result.parent_run_id} in {config.mlflow.tracking_uri}")


def _dry_run(config: StudyConfig) -> None:
    from harness import backends
    from harness.study.sampling import sample_params

    try:
        text = backends.create(config).dry_run(sample_params(config, config.n_trials or 5))
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    Console().print(text, highlight=False, markup=False, soft_wrap=True)


def _print_trials(study: Any) -> None:
    from harness.study.report import trial_rows

    rows = trial_rows(study)
    compared = _compared_metric(study, rows)
    table = Table(title=f"study {study.study_name}")
    for column in ("number", "state", "params", _objective_header(study), "mlflow run id"):
        table.add_column(column)
    if compared:
        table.add_column(f"{compared} vs baseline [CI]")
    for row in rows:
        params = ", ".join(f"{k}={short(v)}" for k, v in row["params"].items())
        objective = _objective_text(row["objective"])
        cells = [str(row["number"]), row["state"], params, objective, row["mlflow_run_id"]]
        if compared:
            mean, low, high = row["vs_baseline"].get(compared, (None, None, None))
            cells.append("" if mean is None else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        table.add_row(*cells)
    Console().print(table)


def _objective_header(study: Any) -> str:
    names = study.metric_names
    return "objective" if not names else ", ".join(names)


def _objective_text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(f"{v:.4f}" for v in value) if isinstance(value, list) else f"{value:.4f}"


def _compared_metric(study: Any, rows: list[dict[str, Any]]) -> str | None:
    """The held-out scorer shown against the baseline: the objective's own, else the composite."""
    seen = {name for row in rows for name in row["vs_baseline"]}
    objective = (study.metric_names or [""])[0]
    for name in (objective, "consistency/heldout/consistency"):
        if name in seen:
            return name
    return None




@app.command()
def trials(
    study_name: Annotated[str, typer.Argument(metavar="STUDY")],
    storage: Annotated[str, typer.Option(help="Optuna storage URL")] = DEFAULT_STORAGE,
) -> None:
    """Print a study's trials: number, state, params, objective, MLflow run id."""
    import optuna

    from harness.storage import make_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        raise fail(f"no study named {study_name!r} in {storage}") from None
    _print_trials(study)
