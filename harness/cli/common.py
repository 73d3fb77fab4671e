"""What every ``harness`` command shares: the app, the console, setup errors, --verbose."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.cli import quiet
from harness.config import ConfigError, StudyConfig, load_config
from harness.data.chat import DataError
from harness.models import ModelError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Sweep fine-tuning hyperparameters as one Optuna study, tracked in MLflow; promote and use the best model.",
)
console = Console(stderr=True)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", help="also show other libraries' warnings, logs and progress bars")
    ] = False,
) -> None:
    # Before any command imports a heavy library: most of what they print is decided at import.
    quiet.configure(verbose)


DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
USER_ERRORS = (ConfigError, DataError, ModelError)


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the Ctrl-C path, so runs and trials are closed truthfully either way."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def setup_errors() -> tuple[type[BaseException], ...]:
    """Errors a user's setup causes (no judge key, a missing model, a server that will not start)."""
    from harness.endpoints.client import EndpointError
    from harness.endpoints.llama_server import ServerError
    from harness.evaluation.embedding import EmbeddingError

    return (*USER_ERRORS, EmbeddingError, EndpointError, ServerError)


def progress_bars() -> Progress:
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
        raise fail(str(exc)) from None


# Model registry: promote, list, use, evaluate. The tracking URI is also the registry URI.
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking and registry URI [default: a config's mlflow.tracking_uri, else sqlite:///mlruns/mlflow.db]",
    ),
]


def registry_errors() -> tuple[type[BaseException], ...]:
    """User-facing failures of registry commands (imported late: mlflow is slow to import)."""
    from mlflow.exceptions import MlflowException

    from harness.lifecycle.registry import RegistryError

    return (*setup_errors(), RegistryError, MlflowException, OSError)


def short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
