"""The ``harness`` command: each command parses, builds, runs and cleans up; nothing else."""

from __future__ import annotations

import json
import logging
import os
import signal
import warnings
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
    # MLflow's advice on signatures and pickling is about choices made on purpose (serving.py).
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _setup_errors() -> tuple[type[BaseException], ...]:
    """Errors a user's setup causes (no judge key, a missing model, a server that will not start)."""
    from harness.evaluation.embedding import EmbeddingError
    from harness.evaluation.judge import JudgeError
    from harness.evaluation.server import ServerError

    return (*USER_ERRORS, EmbeddingError, JudgeError, ServerError)


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
    _quiet_libraries()
    if dry_run:
        _dry_run(config)
        return
    from harness.study import run_sweep

    try:
        with _terminate_as_interrupt(), _progress() as progress:
            result = run_sweep(config, progress=progress)
    except _setup_errors() as exc:
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
    from harness.study.sampling import sample_params

    try:
        text = backends.create(config).dry_run(sample_params(config, config.n_trials or 5))
    except _setup_errors() as exc:
        raise _fail(str(exc)) from None
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
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
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


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


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
        raise _fail(f"no study named {study_name!r} in {storage}") from None
    _print_trials(study)


# Model registry: promote, list, use, evaluate. The tracking URI is also the registry URI.
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking and registry URI [default: a config's mlflow.tracking_uri, else sqlite:///mlruns/mlflow.db]",
    ),
]
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def _quiet_registry() -> None:
    _quiet_libraries()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars on every model load


def _registry_errors() -> tuple[type[BaseException], ...]:
    """User-facing failures of registry commands (imported late: mlflow is slow to import)."""
    from mlflow.exceptions import MlflowException

    from harness.lifecycle.registry import RegistryError

    return (*_setup_errors(), RegistryError, MlflowException, OSError)


def _registry_config(target: str | None, run_id: str | None, tracking_uri: str | None, name: str | None) -> StudyConfig:
    """A study config from a YAML path, else as the study's sweep logged it (by name or by run)."""
    from harness.lifecycle.study_config import study_config

    if target and Path(target).is_file():
        config = load(Path(target), [f"mlflow.tracking_uri={json.dumps(tracking_uri)}"] if tracking_uri else [])
    elif target or run_id:
        config = study_config(tracking_uri or DEFAULT_TRACKING_URI, study=target, run_id=None if target else run_id)
    else:
        raise _fail("give a study config or a study name, or --run RUN_ID")
    if name:
        config = config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"registry_model_name": name})})
    return config


@app.command()
def promote(
    target: Annotated[
        str | None,
        typer.Argument(metavar="[STUDY_CONFIG_OR_STUDY]", help="study YAML, or a study name in the tracking store"),
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="candidate MLflow run id [default: the study's best trial]")
    ] = None,
    alias: Annotated[str, typer.Option(help="registry alias to move")] = "champion",
    dry_run: Annotated[bool, typer.Option(help="show the comparison; write nothing")] = False,
    force: Annotated[bool, typer.Option(help="skip the comparison with the current alias holder")] = False,
    name: Annotated[str | None, typer.Option(help="registered model name [default: the config's]")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a trial's model and move ALIAS to it if it beats the current holder.

    The comparison uses the study's objective under the same held-out evaluation (same
    harness.eval_digest); a champion scored under another evaluation is re-evaluated first. The
    old holder gets alias `previous`. With only --run, the study's config is read from the
    MLflow parent run of that run's experiment. Exit code 0 when the alias is (or would be) on the
    candidate, 1 when it is not.
    """
    _quiet_registry()
    from harness.lifecycle.registry import promote as promote_model

    try:
        config = _registry_config(target, run, tracking_uri, name)
        result = promote_model(config, run, alias=alias, dry_run=dry_run, force=force)
    except _registry_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(escape(result.summary()), highlight=False, soft_wrap=True)
    table = Table()
    for column in ("model", "run", *config.objective.names, "eval digest"):
        table.add_column(column)
    holder = f"version {result.champion_version}" if result.champion_version else "-"
    for label, scores in (("candidate", result.candidate), (f"{alias} ({holder})", result.champion)):
        if scores is not None:
            values = [_short(scores.values.get(n, "")) for n in config.objective.names]
            table.add_row(label, scores.run_id, *values, scores.eval_digest or "-")
    Console().print(table)
    if result.interval_line:  # the paired interval of the improvement that decided
        console.print(f"paired interval: {escape(result.interval_line)}", highlight=False, soft_wrap=True)
    for line in result.written:
        console.print(f"wrote {line}")
    raise typer.Exit(0 if result.promoted or result.already else 1)


@app.command()
def models(
    name: Annotated[str, typer.Argument(metavar="NAME", help="registered model name")],
    tracking_uri: TrackingUri = None,
) -> None:
    """List a registered model's versions: aliases, source trial, objective and held-out scores."""
    from harness.lifecycle.registry import client_for, version_rows

    try:
        rows = version_rows(client_for(tracking_uri or DEFAULT_TRACKING_URI), name)
    except _registry_errors() as exc:
        raise _fail(str(exc)) from None
    if not rows:
        raise _fail(f"no versions of {name!r} in {tracking_uri or DEFAULT_TRACKING_URI}")
    table = Table(title=f"registered model {name}")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def _load_model(model_uri: str, tracking_uri: str | None) -> Any:
    _quiet_registry()
    from harness.lifecycle import serving

    try:
        return serving.load(model_uri, tracking_uri or DEFAULT_TRACKING_URI)
    except _registry_errors() as exc:
        raise _fail(str(exc)) from None


@app.command()
def generate(
    model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="e.g. models:/NAME@champion")],
    prompt: Annotated[str, typer.Argument(help="the user message")],
    max_new_tokens: Annotated[int, typer.Option(help="answer length limit")] = 192,
    tracking_uri: TrackingUri = None,
) -> None:
    """Answer one prompt with a logged or registered model (greedy)."""
    model = _load_model(model_uri, tracking_uri)
    print(model.predict([prompt], params={"max_new_tokens": max_new_tokens})[0])


@app.command()
def chat(
    model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="e.g. models:/NAME@champion")],
    max_new_tokens: Annotated[int, typer.Option(help="answer length limit")] = 192,
    tracking_uri: TrackingUri = None,
) -> None:
    """Talk to a model; the conversation is kept. /reset forgets it, exit (or Ctrl-D) ends."""
    model = _load_model(model_uri, tracking_uri)
    history: list[dict[str, str]] = []
    while True:
        try:
            text = console.input("[bold]you>[/] ").strip()
        except EOFError:
            break
        if text in ("exit", "quit"):
            break
        if text == "/reset" or not text:
            history = [] if text else history
            continue
        history.append({"role": "user", "content": text})
        answer = model.predict([history], params={"max_new_tokens": max_new_tokens})[0]
        history.append({"role": "assistant", "content": answer})
        print(answer, flush=True)


@app.command(name="eval")
def eval_model(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML")],
    model: Annotated[
        str, typer.Option("--model", help="base | RUN_ID | models:/NAME@ALIAS | models:/NAME/VERSION | openai:MODEL_ID")
    ],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
) -> None:
    """Evaluate any model exactly as the study's trials are, logged as a run in its experiment."""
    config = load(config_path, overrides or [])
    _quiet_registry()
    from harness.lifecycle.evaluate import evaluate_model

    try:
        result = evaluate_model(config, model)
    except _registry_errors() as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{model} (eval digest {result.eval_digest})")
    table.add_column("metric")
    table.add_column("value")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}")
    Console().print(table)
    console.print(f"MLflow run {result.run_id} in {config.mlflow.tracking_uri}")


@app.command()
def score(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML (its scorers, rubric and judge)")],
    answers_path: Annotated[
        Path, typer.Argument(metavar="ANSWERS", help='JSONL of {"question", "reference", "answer"}')
    ],
    out: Annotated[Path | None, typer.Option(help="write every row with every score as JSONL")] = None,
    scorers: Annotated[
        str | None, typer.Option(help="comma-separated, e.g. structure,detail,embedding [default: the config's]")
    ] = None,
) -> None:
    """Score answers produced anywhere with the study's own scorers; print a table and the means."""
    from harness.settings.evaluation import Scorer

    chosen = tuple(s.strip() for s in scorers.split(",")) if scorers else None
    known = Scorer.__args__  # type: ignore[attr-defined]
    if chosen is not None and (bad := [s for s in chosen if s not in known]):
        raise _fail(f"--scorers: unknown {', '.join(bad)}; known: {', '.join(known)}")
    config = load(config_path, [])
    _quiet_libraries()
    from harness.evaluation.answers import load_answers, score_answers, write_jsonl

    try:
        records = load_answers(answers_path)  # every line checked before anything is scored
        result = score_answers(config.evaluation, records, chosen or config.evaluation.scorers)
    except _setup_errors() as exc:
        raise _fail(str(exc)) from None
    _print_scores(result.rows, result.metrics)
    if out is not None:
        write_jsonl(result.rows, out)
        console.print(f"wrote {len(result.rows)} rows to {out}")


def _print_scores(rows: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    from harness.evaluation.scoring import TEXT_COLUMNS

    columns = [k for k in rows[0] if k not in TEXT_COLUMNS]
    table = Table(title="scores per answer")
    for column in ("id", "question", *columns):
        table.add_column(column)
    for row in rows:
        values = ["" if row[c] is None else f"{row[c]:.3f}" for c in columns]
        table.add_row(str(row.get("id", "")), row["question"][:48], *values)
    means = [
        f"{metrics[f'consistency/answers/{c}']:.3f}" if f"consistency/answers/{c}" in metrics else "" for c in columns
    ]
    table.add_row("mean", "", *means, style="bold")
    Console().print(table)


@app.command(name="judge-check")
def judge_check(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML (its judge, rubric and data)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
) -> None:
    """How far to trust the judge: does it rank controlled variants of the training answers right?

    Exit code 0 when its overall accuracy reaches evaluation.judge.min_check_accuracy, 1 when not.
    """
    config = load(config_path, overrides or [])
    _quiet_libraries()
    from harness.evaluation.judge_check import run_check

    try:
        results = run_check(config)
    except _setup_errors() as exc:
        raise _fail(str(exc)) from None
    _print_check(results, config.evaluation.judge.min_check_accuracy)
    judge = next(r for r in results if r.scorer == "judge")
    raise typer.Exit(0 if judge.accuracy >= config.evaluation.judge.min_check_accuracy else 1)


def _print_check(results: list[Any], threshold: float) -> None:
    from harness.evaluation.judge_check import CRITERIA, OVERALL

    names = (*CRITERIA, OVERALL)
    table = Table(title=f"pairwise accuracy on controlled variants (chance 0.50; the judge needs {threshold:.2f})")
    table.add_column("scorer")
    for name in names:
        table.add_column(name, justify="right")
    for result in results:
        cells = [f"{c.accuracy:.2f} ({c.gap:+.2g})" if (c := result.criteria.get(name)) else "-" for name in names]
        table.add_row(result.scorer, *cells, style="bold" if result.scorer == "judge" else None)
    Console().print(table)
    console.print("cells: accuracy (mean score gap, better minus worse variant, in the scorer's units)")


if __name__ == "__main__":
    app()
