"""Launch commands: a study's workers handed to Ray, Kubernetes or Slurm."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import quiet
from harness.cli.common import app, console, fail, load, terminate_as_interrupt
from harness.cli.study import ConfigPath, NTrials, Overrides, Storage, StudyName, Tracking, config_overrides
from harness.config import StudyConfig

launch_app = typer.Typer(no_args_is_help=True, help="Hand a study's workers to a cluster: Ray, Kubernetes or Slurm.")
app.add_typer(launch_app, name="launch")

Count = Annotated[int, typer.Option("--workers", min=1, help="workers to start, all joining the study")]  # required
Gpus = Annotated[int, typer.Option(min=0, help="GPUs each worker gets")]
Cpus = Annotated[float, typer.Option(min=0.1, help="CPUs each worker gets (its torch threads)")]
DryRun = Annotated[bool, typer.Option(help="print what would be submitted; submit nothing")]


def _config(
    config_path: Path,
    overrides: list[str] | None,
    study_name: str | None,
    n_trials: int | None,
    tracking_uri: str | None,
    storage: str | None,
) -> StudyConfig:
    return load(config_path, config_overrides(overrides, study_name, n_trials, tracking_uri, storage, False))


def _cluster_ready(config: StudyConfig) -> None:
    """Refuse stores a worker on another machine could not reach, with the reason."""
    from harness.launch.reachability import cluster_problems

    if problems := cluster_problems(config):
        raise fail("workers on the cluster could not reach: " + "; ".join(problems))


@launch_app.command("ray")
def ray_command(
    config_path: ConfigPath,
    workers: Count,
    overrides: Overrides = None,
    address: Annotated[
        str | None, typer.Option(help="a running Ray cluster (HOST:PORT or auto); default: a Ray started here")
    ] = None,
    gpus_per_worker: Gpus = 0,
    cpus_per_worker: Cpus = 1.0,
    study_name: StudyName = None,
    n_trials: NTrials = None,
    tracking_uri: Tracking = None,
    storage: Storage = None,
    dry_run: DryRun = False,
) -> None:
    """Run the study's workers as Ray tasks until it has n_trials; each output line names its worker.

    Ray places them and starts one again when its process or node dies (the study retries its
    trial). Stores on this machine (SQLite, localhost) are fine for a Ray on this machine only.
    """
    from harness.cli.study import finish_sweep, first_trial
    from harness.launch.ray import RayCluster, check_address, launch, plan
    from harness.launch.spec import LaunchError, Workers

    config = _config(config_path, overrides, study_name, n_trials, tracking_uri, storage)
    cluster = RayCluster(Workers(workers, cpus_per_worker, gpus_per_worker), address)
    if dry_run:
        typer.echo(plan(config, cluster))
        return
    try:
        check_address(address)  # before the study database: an address that is wrong is said first
    except LaunchError as exc:
        raise fail(str(exc)) from None
    first = first_trial(config)
    try:
        with terminate_as_interrupt():
            # Each worker's libraries as quiet as this command keeps them (--verbose: as loud).
            ends = launch(config, cluster, console.print, functools.partial(quiet.configure, quiet.verbose()))
    except LaunchError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every worker closed its runs; rerun the same command to resume")
        raise typer.Exit(130) from None
    finish_sweep(config, first, [(f"worker {e.index}: {e.reason or f'exit {e.code}'}", e.code) for e in ends if e.code])


@launch_app.command("k8s")
def k8s_command(
    config_path: ConfigPath,
    image: Annotated[str, typer.Option(help="the image the pods run (see the Dockerfile)")],
    out: Annotated[Path, typer.Option(help="where to write the manifests (job.yaml)")],
    workers: Count,
    overrides: Overrides = None,
    gpus_per_worker: Gpus = 0,
    cpus_per_worker: Cpus = 1.0,
    secret: Annotated[
        str, typer.Option(help="the Secret the workers' keys and passwords come from")
    ] = "harness-secrets",
    volume: Annotated[
        str | None, typer.Option(help="CLAIM:PATH: a PersistentVolumeClaim with the data, mounted at PATH")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="the namespace to create the Job in")] = None,
    study_name: StudyName = None,
    n_trials: NTrials = None,
    tracking_uri: Tracking = None,
    storage: Storage = None,
    dry_run: DryRun = False,
) -> None:
    """Write a Kubernetes Indexed Job (one pod per worker) and its ConfigMap, and create them."""
    from harness.launch import kubernetes
    from harness.launch.spec import LaunchError, Workers

    config = _config(config_path, overrides, study_name, n_trials, tracking_uri, storage)
    _cluster_ready(config)
    claim, _, mount = (volume or "").partition(":")
    if volume is not None and not (claim and mount.startswith("/")):
        raise fail(f"--volume {volume}: expected CLAIM:/absolute/path")
    placed = Workers(workers, cpus_per_worker, gpus_per_worker)
    mounted = (claim, mount) if volume else None
    job = kubernetes.KubernetesJob(image, placed, secret, volume=mounted, namespace=namespace)
    try:
        documents = kubernetes.manifests(config, job)
        if volume is None and set(documents[0]["data"]) == {"config.yaml"}:
            console.print("note: the data is too large for the ConfigMap: the image must hold it at the config's paths")
        text = kubernetes.to_yaml(documents)
        out.mkdir(parents=True, exist_ok=True)
        (out / "job.yaml").write_text(text)
        if dry_run:
            typer.echo(text, nl=False)
            return
        created = kubernetes.submit(documents, namespace)
    except LaunchError as exc:
        raise fail(str(exc)) from None
    console.print(f"created {', '.join(created)} (manifests in {out / 'job.yaml'})")


@launch_app.command("slurm")
def slurm_command(
    config_path: ConfigPath,
    out: Annotated[Path, typer.Option(help="where to write the script, the config and the logs (shared by the nodes)")],
    workers: Count,
    overrides: Overrides = None,
    gpus_per_worker: Gpus = 0,
    cpus_per_worker: Cpus = 1.0,
    partition: Annotated[str | None, typer.Option(help="sbatch --partition")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", help="sbatch --time (e.g. 1-00:00:00)")] = None,
    command: Annotated[str, typer.Option(help="how a node starts the harness")] = "harness",
    study_name: StudyName = None,
    n_trials: NTrials = None,
    tracking_uri: Tracking = None,
    storage: Storage = None,
    dry_run: DryRun = False,
) -> None:
    """Write an sbatch job array (one task per worker) running `harness worker`, and submit it."""
    from harness.launch import slurm
    from harness.launch.spec import LaunchError, Workers

    config = _config(config_path, overrides, study_name, n_trials, tracking_uri, storage)
    _cluster_ready(config)
    job = slurm.SlurmJob(Workers(workers, cpus_per_worker, gpus_per_worker), out, command, partition, time_limit)
    try:
        script = slurm.write(config, job)
        if dry_run:
            typer.echo(script.read_text())
            return
        console.print(slurm.submit(script))
    except LaunchError as exc:
        raise fail(str(exc)) from None
