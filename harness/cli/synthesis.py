"""``harness data synth`` and ``harness data augment``: training data made by a model, tracked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.cli.common import console, fail, progress_bars
from harness.cli.data import data_app
from harness.config import ConfigError
from harness.data.chat import DataError, load_jsonl
from harness.settings.synthesis import AugmentConfig, EndpointConfig


def _setup_errors() -> tuple[type[BaseException], ...]:
    from harness.endpoints.client import EndpointError
    from harness.endpoints.llama_server import ServerError
    from harness.evaluation.embedding import EmbeddingError

    # ConfigError: a llama_cpp endpoint on an install without llama.cpp (one line naming the extra).
    return (ConfigError, DataError, EmbeddingError, ServerError, EndpointError, OSError)


@data_app.command()
def synth(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="synthesis spec (YAML)")],
    out: Annotated[Path, typer.Option("--out", help="chat JSONL to write; OUT.state.jsonl keeps progress")],
) -> None:
    """Personas -> questions -> answers in the house style, filtered; logged to MLflow. Resumable."""
    from harness.synthesis.synth import SpecError, load_spec

    try:
        spec = load_spec(spec_path)  # every spec error exits 2 here, before any request
    except SpecError as exc:
        raise fail(str(exc)) from None
    from harness.endpoints.answerer import open_clients
    from harness.evaluation.embedding import load_embedder
    from harness.synthesis.record import log_synthesis
    from harness.synthesis.synth import synthesize

    def embed(texts: list[str]) -> object:
        return load_embedder().encode(texts)

    try:
        # Clients first: a missing key or llama.cpp is one line, not one under an empty progress bar.
        with open_clients(spec.endpoint) as clients, progress_bars() as progress:
            task = progress.add_task("synthesizing", total=None)
            result = synthesize(
                spec,
                out,
                clients,
                embed,
                lambda done, total: progress.update(task, completed=done, total=total),
            )
    except _setup_errors() as exc:
        raise fail(str(exc)) from None
    run_id = log_synthesis(spec, out, result)
    _print_counts(result.counts(), f"{out} (MLflow run {run_id})")
    if result.failed:
        for line in result.failed[:5]:
            console.print(f"  failed: {line}", highlight=False, markup=False)
        raise fail(f"{len(result.failed)} item(s) failed; rerun the same command to retry only those", code=1)


def _print_counts(counts: dict[str, int], title: str) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in counts.items():
        table.add_row(name, str(value))
    Console().print(table)


def _augment_config(factor: int, seed: int, alpha: float, pivot: str, endpoint: dict[str, object]) -> AugmentConfig:
    try:
        return AugmentConfig(
            factor=factor, seed=seed, eda_alpha=alpha, pivot_language=pivot, endpoint=EndpointConfig(**endpoint)
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(problems) from None


@data_app.command()
def augment(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="chat JSONL")],
    method: Annotated[str, typer.Option(help="eda | paraphrase | backtranslate")],
    out: Annotated[Path, typer.Option("--out", help="originals, then the copies (plain chat JSONL)")],
    factor: Annotated[int, typer.Option(min=1, help="copies per example")] = 1,
    seed: Annotated[int, typer.Option(help="the same file, method and seed give the same copies")] = 0,
    alpha: Annotated[float, typer.Option(help="EDA: share of words each operation changes")] = 0.1,
    pivot: Annotated[str, typer.Option(help="backtranslate: the language there and back")] = "French",
    kind: Annotated[str, typer.Option(help="rewrites: llama_cpp | openai | azure_openai | base_url")] = "llama_cpp",
    model: Annotated[
        str, typer.Option(help="rewrites: model or deployment (llama_cpp: smollm2 or a GGUF)")
    ] = "smollm2",
    base_url: Annotated[str | None, typer.Option(help="rewrites: an OpenAI-compatible /v1 URL")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="rewrites: the variable holding the key")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="rewrites: requests in flight")] = 2,
) -> None:
    """Copies of each example with its user turns rewritten (never code, never answers); originals kept.
    Provenance goes to OUT.augment.json (chat JSONL has no room for it)."""
    from harness.synthesis.augment import METHODS, augment, method_tools, write_augmented

    if method not in METHODS:
        raise fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if out.exists() and file.exists() and out.samefile(file):
        raise fail(f"{out} is the input file; write the augmented set elsewhere")
    endpoint = {
        "kind": kind,
        "model": model,
        "base_url": base_url,
        "api_key_env": api_key_env,
        "concurrency": concurrency,
    }
    config = _augment_config(factor, seed, alpha, pivot, endpoint)
    try:
        examples = load_jsonl(file)
        with method_tools(method, config) as tools, progress_bars() as progress:
            task = progress.add_task(f"augmenting ({method})", total=len(examples) * factor)
            made = augment(examples, method, config, advance=lambda: progress.advance(task), **tools)
        sidecar = write_augmented(made, file, out, config)
    except _setup_errors() as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{len(examples)} originals + {made.copies} {method} copies -> {out} ({made.skipped} not made); "
        f"provenance: {sidecar}",
        highlight=False,
    )
