"""Study commands: run a sweep, list its trials."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import (
    DEFAULT_STORAGE,
    app,
    console,
    fail,
    load,
    progress_bars,
    setup_errors,
    terminate_as_interrupt,
)
from harness.cli.quiet import verbose
from harness.cli.trial_table import print_trials
from harness.config import StudyConfig
from harness.redaction import mask_url

StudyName = Annotated[str | None, typer.Option(help="override study_name")]
NTrials = Annotated[int | None, typer.Option(help="total trials the study should reach (all workers together)")]
Tracking = Annotated[str | None, typer.Option(help="MLflow tracking URI")]
Storage = Annotated[str | None, typer.Option(help="Optuna storage URL")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides")]
ConfigPath = Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML")]
WeakJudge = Annotated[
    bool, typer.Option(help="let a judge that fails its check (harness judge-check) into the objective")
]


def config_overrides(
    overrides: list[str] | None,
    study_name: str | None,
    n_trials: int | None,
    tracking_uri: str | None,
    storage: str | None,
    allow_weak_judge: bool,
) -> list[str]:
    options = (
        ("study_name", study_name),
        ("n_trials", n_trials),
        ("mlflow.tracking_uri", tracking_uri),
        ("storage", storage),
    )
    extra = [f"{key}={json.dumps(value)}" for key, value in options if value is not None]
    weak = ["evaluation.judge.allow_weak=true"] if allow_weak_judge else []
    return [*(overrides or []), *weak, *extra]


@app.command()
def sweep(
    config_path: ConfigPath,
    overrides: Overrides = None,
    study_name: StudyName = None,
    n_trials: NTrials = None,
    tracking_uri: Tracking = None,
    storage: Storage = None,
    dry_run: Annotated[bool, typer.Option(help="validate, estimate and show the first trials; train nothing")] = False,
    allow_weak_judge: WeakJudge = False,
    workers: Annotated[int, typer.Option(min=1, help="worker processes on this machine, all joining the study")] = 1,
    gpus_per_worker: Annotated[
        int | None,
        typer.Option(min=0, help="GPUs each worker sees (CUDA_VISIBLE_DEVICES); default 1 where there are GPUs"),
    ] = None,
) -> None:
    """Run (or resume) an Optuna study whose trials fine-tune and log to MLflow."""
    args = config_overrides(overrides, study_name, n_trials, tracking_uri, storage, allow_weak_judge)
    config = load(config_path, args)
    if dry_run:
        from harness.cli.dry_run import show_dry_run

        show_dry_run(config, config_path)
    elif workers > 1 or gpus_per_worker is not None:
        _sweep_with_workers(config_path, args, config, workers, gpus_per_worker)
    else:
        _work(config, max_trials=None, show=True)


@app.command()
def worker(
    config_path: ConfigPath,
    overrides: Overrides = None,
    study_name: StudyName = None,
    n_trials: NTrials = None,
    tracking_uri: Tracking = None,
    storage: Storage = None,
    allow_weak_judge: WeakJudge = False,
    max_trials: Annotated[int | None, typer.Option(min=1, help="stop after this many trials of this worker")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bars and no table (workers started by sweep)")] = False,
) -> None:
    """Join a study (creating it when first) and run trials until it has n_trials.

    Start as many as you like, on any machine that reaches the study's storage (PostgreSQL for
    several machines) and MLflow store: setup, the baseline and registration each happen once.
    """
    config = load(
        config_path, config_overrides(overrides, study_name, n_trials, tracking_uri, storage, allow_weak_judge)
    )
    _work(config, max_trials=max_trials, show=not quiet)


def _work(config: StudyConfig, max_trials: int | None, show: bool) -> None:
    from harness.study import run_sweep

    try:
        with terminate_as_interrupt(), progress_bars() if show else contextlib.nullcontext() as progress:
            result = run_sweep(config, progress=progress, max_trials=max_trials)
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: runs closed; rerun the same command to resume")
        raise typer.Exit(130) from None
    if result.reconciled and show:
        console.print(f"queued again, from interrupted or dead workers: trials {result.reconciled}")
    if show:
        print_trials(result.study, config.storage)
        console.print(f"MLflow parent run {result.parent_run_id} in {mask_url(config.mlflow.tracking_uri)}")
        # The link on a line of its own: a terminal of 80 columns shows it whole, and it stays clickable.
        console.print("in the MLflow UI:")
        console.print(mask_url(_runs_link(config, result.parent_run_id)), soft_wrap=True)
    if result.outcome.exit_code and not show:  # a worker of sweep --workers: the sweep says why, once
        raise typer.Exit(result.outcome.exit_code)
    if result.outcome.exit_code:
        raise fail(result.outcome.reason, code=result.outcome.exit_code)


def _sweep_with_workers(
    config_path: Path, args: list[str], config: StudyConfig, n: int, gpus_per_worker: int | None
) -> None:
    """N ``harness worker`` processes on this machine, one progress bar for the study."""
    import optuna

    from harness.device import gpu_ids
    from harness.storage import is_journal, make_storage
    from harness.study.coordination import is_shared
    from harness.study.journal import ONE_WORKER
    from harness.study.resume import trials_done
    from harness.study.workers import PlacementError, run_workers, worker_envs

    if not is_shared(config.storage):
        where = "a SQLite file or PostgreSQL"
        raise fail(f"--workers needs a storage every worker can open ({where}), not {mask_url(config.storage)}")
    if is_journal(config.storage) and n > 1:
        raise fail(f"--workers {n} with storage {config.storage}: {ONE_WORKER}")
    try:
        envs = worker_envs(n, gpu_ids(), gpus_per_worker)
    except PlacementError as exc:
        raise fail(str(exc)) from None
    loud = ["--verbose"] if verbose() else []
    argv = [sys.executable, "-m", "harness.cli", *loud, "worker", str(config_path), *args, "--quiet"]
    first = first_trial(config)
    with terminate_as_interrupt(), progress_bars() as progress:
        task = progress.add_task(f"{n} workers, study {config.study_name}", total=config.n_trials)

        def watch() -> None:
            try:
                study = optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage))
            except KeyError:
                return  # not created yet
            progress.update(task, completed=trials_done(study))

        try:
            codes = run_workers(argv, envs, watch)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: every worker closed its runs; rerun the same command to resume")
            raise typer.Exit(130) from None
    finish_sweep(config, first, [(f"worker {i} exited {code}", code) for i, code in enumerate(codes) if code])


def first_trial(config: StudyConfig) -> int:
    """The number the sweep's first trial will have (the study's next), before its workers start."""
    from harness.storage import StorageError, load_study
    from harness.study.outcome import first_of_sweep

    try:
        return first_of_sweep(load_study(config.study_name, config.storage).get_trials(deepcopy=False))
    except KeyError:
        return 0  # a new study
    except StorageError as exc:  # a database that never answered: not worth starting workers
        raise fail(str(exc)) from None


def finish_sweep(config: StudyConfig, first: int, failures: list[tuple[str, int]]) -> None:
    """After the workers: the study's trials, then the sweep's verdict (exit 0 when it is done)
    or, failing that, why workers failed (``failures``: what each said, its exit status)."""
    import optuna

    from harness.storage import make_storage
    from harness.study.outcome import recorded_outcome, sweep_outcome

    study = optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage))
    print_trials(study, config.storage)
    previous = recorded_outcome(_parent_tags(config, study))  # the workers' verdict on the parent run
    if (outcome := sweep_outcome(study.get_trials(deepcopy=False), first, previous)).exit_code:
        raise fail(outcome.reason, code=outcome.exit_code)
    if failures:
        raise fail("; ".join(reason for reason, _ in failures), code=max(code for _, code in failures))


def _runs_link(config: StudyConfig, parent_run_id: str) -> str:
    """The study's runs in the MLflow UI; each trial's answers are on its run's Traces tab."""
    from mlflow.tracking import MlflowClient

    from harness.tracking import ui_runs_link

    experiment = MlflowClient(config.mlflow.tracking_uri).get_run(parent_run_id).info.experiment_id
    return ui_runs_link(config.mlflow.tracking_uri, experiment)


def _parent_tags(config: StudyConfig, study: Any) -> dict[str, str]:
    """The tags of the study's parent run; none when no worker got as far as opening it."""
    from mlflow.tracking import MlflowClient

    from harness.storage import ATTR_RUN_ID

    run_id = study.user_attrs.get(ATTR_RUN_ID)
    return dict(MlflowClient(config.mlflow.tracking_uri).get_run(run_id).data.tags) if run_id else {}


@app.command()
def trials(
    study_name: Annotated[str, typer.Argument(metavar="STUDY")],
    storage: Annotated[str, typer.Option(help="Optuna storage URL")] = DEFAULT_STORAGE,
    wide: Annotated[bool, typer.Option(help="one line per trial, every column whole, however wide")] = False,
) -> None:
    """Print a study's trials: number, state, params, objective, MLflow run id, interval vs the baseline."""
    import optuna

    from harness.storage import StorageError, make_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        raise fail(f"no study named {study_name!r} in {mask_url(storage)}") from None
    except StorageError as exc:
        raise fail(str(exc)) from None
    print_trials(study, storage, wide)
