"""Registry commands: promote a trial, list versions, use a model, evaluate any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import (
    DEFAULT_TRACKING_URI,
    TrackingUri,
    app,
    console,
    fail,
    load,
    registry_errors,
    short,
)
from harness.config import StudyConfig
from harness.redaction import mask_url


def _registry_config(target: str | None, run_id: str | None, tracking_uri: str | None, name: str | None) -> StudyConfig:
    """A study config from a YAML path, else as the study's sweep logged it (by name or by run)."""
    from harness.lifecycle.study_config import study_config

    if target and Path(target).is_file():
        config = load(Path(target), [f"mlflow.tracking_uri={json.dumps(tracking_uri)}"] if tracking_uri else [])
    elif target or run_id:
        config = study_config(tracking_uri or DEFAULT_TRACKING_URI, study=target, run_id=None if target else run_id)
    else:
        raise fail("give a study config or a study name, or --run RUN_ID")
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
    harness.eval_digest); a champion scored under another evaluation is re-evaluated first. With
    no holder yet, the candidate must beat the study's untuned baseline by the same rule. A
    per-example objective is decided on the paired interval of both runs' per-example tables:
    without them, no promotion. The old holder gets alias `previous`. With only --run, the
    study's config is read from the MLflow parent run of that run's experiment. Exit code 0 when
    the alias is (or would be) on the candidate, 1 when it is not.
    """
    from harness.lifecycle.registry import promote as promote_model

    try:
        config = _registry_config(target, run, tracking_uri, name)
        result = promote_model(config, run, alias=alias, dry_run=dry_run, force=force)
    except registry_errors() as exc:
        raise fail(str(exc)) from None
    console.print(escape(result.summary()), highlight=False, soft_wrap=True)
    table = Table()
    for column in ("model", "run", *config.objective.names, "eval digest"):
        table.add_column(column)
    holder = f"version {result.champion_version}" if result.champion_version else "-"
    sides = (("candidate", result.candidate), (f"{alias} ({holder})", result.champion), ("baseline", result.baseline))
    for label, scores in sides:
        if scores is not None:
            values = [short(scores.values.get(n, "")) for n in config.objective.names]
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
    except registry_errors() as exc:
        raise fail(str(exc)) from None
    if not rows:
        raise fail(f"no versions of {name!r} in {mask_url(tracking_uri or DEFAULT_TRACKING_URI)}")
    table = Table(title=f"registered model {name}")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def _load_model(model_uri: str, tracking_uri: str | None) -> Any:
    from harness.lifecycle import serving

    try:
        return serving.load(model_uri, tracking_uri or DEFAULT_TRACKING_URI)
    except registry_errors() as exc:
        raise fail(str(exc)) from None


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
    from harness.lifecycle.evaluate import evaluate_model

    try:
        result = evaluate_model(config, model)
    except registry_errors() as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"{model} (eval digest {result.eval_digest})")
    table.add_column("metric")
    table.add_column("value")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}")
    Console().print(table)
    console.print(f"MLflow run {result.run_id} in {mask_url(config.mlflow.tracking_uri)}")
