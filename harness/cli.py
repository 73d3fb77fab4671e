"""The ``harness`` command: each command parses, builds, runs and cleans up; nothing else."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.config import ConfigError, StudyConfig, load_config
from harness.data.chat import DataError
from harness.models import ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
USER_ERRORS = (ConfigError, DataError, ModelError)


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the Ctrl-C path, so runs and trials are closed truthfully either way."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def load(config_path: Path, overrides: list[str]) -> StudyConfig:
    try:
        return load_config(config_path, overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@app.command()
def sweep(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
    study_name: Annotated[str | None, typer.Option(help="override study_name")] = None,
    n_trials: Annotated[int | None, typer.Option(help="total trials the study should reach")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL")] = None,
    dry_run: Annotated[bool, typer.Option(help="validate, estimate and show the first trials; train nothing")] = False,
) -> None:
    """Run (or resume) an Optuna study whose trials fine-tune and log to MLflow."""
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
    _quiet_libraries()
    if dry_run:
        _dry_run(config)
        return
    from harness.study import run_sweep

    try:
        with _terminate_as_interrupt(), _progress() as progress:
            result = run_sweep(config, progress=progress)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: runs closed; rerun the same command to resume")
        raise typer.Exit(130) from None
    if result.reconciled:
        console.print(f"re-queued trials whose process had died: {result.reconciled}")
    _print_trials(result.study)
    console.print(f"MLflow parent run {result.parent_run_id} in {config.mlflow.tracking_uri}")


def _dry_run(config: StudyConfig) -> None:
    from harness import backends

    try:
        text = backends.create(config).dry_run(config.n_trials or 5)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    Console().print(text, highlight=False, markup=False, soft_wrap=True)


def _print_trials(study: Any) -> None:
    from harness.report import trial_rows

    table = Table(title=f"study {study.study_name}")
    for column in ("number", "state", "params", "objective", "mlflow run id"):
        table.add_column(column)
    for row in trial_rows(study):
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
        objective = "" if row["objective"] is None else f"{row['objective']:.4f}"
        table.add_row(str(row["number"]), row["state"], params, objective, row["mlflow_run_id"])
    Console().print(table)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command()
def trials(
    study_name: Annotated[str, typer.Argument(metavar="STUDY")],
    storage: Annotated[str, typer.Option(help="Optuna storage URL")] = DEFAULT_STORAGE,
) -> None:
    """Print a study's trials: number, state, params, objective, MLflow run id."""
    import optuna

    from harness.study import make_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        raise _fail(f"no study named {study_name!r} in {storage}") from None
    _print_trials(study)


if __name__ == "__main__":
    app()
