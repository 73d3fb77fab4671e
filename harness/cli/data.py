"""Data commands: check files with the sweep's own validators, split one into train / held-out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import app, console, fail, load, progress_bars, registry_errors
from harness.config import LocalStudyConfig, StudyConfig
from harness.data.chat import DataError
from harness.data.check import Summary, one_sided_groups, read_all, summarise
from harness.data.prices import Price, PriceError, load_price
from harness.data.split import SplitError, split_file, write_split
from harness.models import ModelError, is_tracked, load_tokenizer

data_app = typer.Typer(
    no_args_is_help=True,
    help="Check chat / preference JSONL before paying for training on it; split it into train and held-out;"
    " make DPO preference pairs from a chat file and a model's own answers.",
)
app.add_typer(data_app, name="data")

# With neither --config nor --max-seq-length, the limit a study gets by default.
DEFAULT_MAX_SEQ_LENGTH: int = LocalStudyConfig.model_fields["max_seq_length"].default
DEFAULT_TOKENIZER = "smollm2"


def _settings(
    config: StudyConfig | None, max_seq_length: int | None, tokenizer: str | None, prices: Path | None
) -> tuple[str, int, str | None, Price | None]:
    """Tokenizer spec, max_seq_length, system prompt and price: options over the config."""
    # A remote study's base_model names a hosted model with no local tokenizer: count with SmolLM2.
    local_model = config.base_model if config is not None and config.base_is_weights else None
    if tokenizer is None and local_model is not None and is_tracked(local_model):
        from harness.lifecycle.lineage import resolve_base

        try:  # a fine-tune in the MLflow store (lineage): its local copy has the tokenizer
            local_model = resolve_base(config).config.base_model  # type: ignore[arg-type]
        except registry_errors() as exc:
            raise fail(str(exc)) from None
    spec = tokenizer or local_model or DEFAULT_TOKENIZER
    length = max_seq_length or (config.max_seq_length if config else DEFAULT_MAX_SEQ_LENGTH)
    system_prompt = config.system_prompt if config else None
    try:
        price = load_price(prices) if prices is not None else None
    except PriceError as exc:
        raise fail(str(exc)) from None
    return spec, length, system_prompt, price


@data_app.command()
def check(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="chat or DPO preference JSONL")],
    config_path: Annotated[
        Path | None,
        typer.Option("--config", help="study YAML: its base_model, max_seq_length and system prompt"),
    ] = None,
    max_seq_length: Annotated[
        int | None, typer.Option(min=1, help=f"[default: the config's, else {DEFAULT_MAX_SEQ_LENGTH}]")
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="model whose tokenizer counts [default: the config's base_model, else smollm2]")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(help="YAML/JSON: model -> USD per 1M trained tokens, and `model`: the one to price"),
    ] = None,
) -> None:
    """Validate every line like the sweep does (file:line, exit 2), then summarise each file."""
    config = load(config_path, []) if config_path is not None else None
    spec, length, system_prompt, price = _settings(config, max_seq_length, tokenizer, prices)
    checked, problems = read_all(files)
    if problems:
        for problem in problems:
            console.print(escape(problem), highlight=False, soft_wrap=True)
        raise fail(f"{len(problems)} problem(s) in {len(files)} file(s)")
    try:
        loaded = load_tokenizer(spec)
        summaries = [summarise(c, loaded, spec, length, system_prompt, price) for c in checked]
    except (DataError, ModelError) as exc:
        raise fail(str(exc)) from None
    out = Console()
    for summary in summaries:
        out.print(_table(summary))
        _print_where(out, f"over max_seq_length {summary.max_seq_length}", list(summary.over_length))
        _print_where(out, "duplicate prompts", [", ".join(group) for group in summary.duplicate_prompts])
        if config is not None:
            _print_preflight(out, config, summary.path)
    for warning in one_sided_groups(checked):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def _print_preflight(out: Console, config: StudyConfig, path: Path) -> None:
    """A remote study's own preflight (OpenAI's token rule, the model's cap, the config's prices)."""
    settings = config.remote_settings
    if settings is None:
        return
    from harness.backends.openai.preflight import preflight
    from harness.backends.openai.training_file import load_dataset

    estimate = preflight(load_dataset(path, None, None, 0, config.system_prompt), config.base_model, settings)
    cost = estimate.cost_usd(1)
    lines = [estimate.render(), f"estimated cost per epoch: {'unknown' if cost is None else f'${cost:.4f}'}"]
    out.print(f"[bold]as {config.backend} would bill it[/]\n" + escape("\n".join(lines)), highlight=False)


def _print_where(out: Console, what: str, items: list[str], shown: int = 5) -> None:
    """Where to look, not only how many: the first few file:line entries."""
    for item in items[:shown]:
        out.print(f"  {what}: {escape(item)}", highlight=False, soft_wrap=True)
    if len(items) > shown:
        out.print(f"  {what}: ... and {len(items) - shown} more", highlight=False)


def _table(s: Summary) -> Table:
    table = Table(title=f"{s.path} ({s.format})", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("examples", str(s.examples))
    table.add_row("turns per example (mean)", f"{s.turns_mean:.2f}")
    table.add_row(
        f"tokens per example, {s.tokenizer} (min / mean / max)",
        f"{s.tokens_min} / {s.tokens_mean:.1f} / {s.tokens_max}",
    )
    table.add_row("tokens per epoch (every sequence, whole)", str(s.tokens_per_epoch))
    table.add_row(f"examples over max_seq_length {s.max_seq_length}", _flag(len(s.over_length)))
    table.add_row("duplicate prompts (same user content)", _flag(s.n_duplicate_prompts))
    table.add_row("weight-0 assistant turns", str(s.weight_zero_turns))
    if s.checked_examples or s.groups:
        table.add_row("examples with assert checks", str(s.checked_examples))
        table.add_row("groups (questions asked in several wordings)", str(len(s.groups)))
    if s.price is not None and s.cost_per_epoch_usd is not None:
        table.add_row("estimated cost per epoch", f"${s.cost_per_epoch_usd:.4f}")
        # The hosted model's own tokenizer bills: counts from another tokenizer are an estimate.
        table.caption = f"priced as {s.price.model} at ${s.price.usd_per_mtok:g} per 1M tokens counted by {s.tokenizer}"
    return table


def _flag(count: int) -> str:
    return f"[bold yellow]{count}[/]" if count else "0"


@data_app.command(name="split")
def split_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="chat or DPO preference JSONL")],
    out_train: Annotated[Path, typer.Option("--out-train", help="where the training lines go")],
    out_heldout: Annotated[Path, typer.Option("--out-heldout", help="where the held-out lines go")],
    heldout: Annotated[float, typer.Option(help="share of examples held out (by prompt group)")] = 0.3,
    seed: Annotated[int, typer.Option(help="the same seed and file give the same split")] = 0,
) -> None:
    """Seeded split; examples sharing a first user message never straddle it. Lines copied byte for byte."""
    try:
        planned = split_file(file, heldout, seed)
        write_split(file, planned, out_train, out_heldout)
    except (DataError, SplitError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{planned.examples} examples in {planned.groups} prompt groups: "
        f"{len(planned.train)} -> {out_train}, {len(planned.heldout)} -> {out_heldout}"
    )


@data_app.command(name="pairs")
def pairs_command(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="an SFT study: its training file, system prompt and tracking URI")
    ],
    out: Annotated[Path, typer.Option("--out", help="where the DPO preference JSONL goes")],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="who answers: base (the study's) | run:RUN_ID | models:/NAME@ALIAS | models:/NAME/VERSION"
        ),
    ] = "base",
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N training examples")] = None,
) -> None:
    """Preference pairs: the reference answer preferred, the model's own greedy answer not (same ones skipped)."""
    from harness.lifecycle.pairs import make_pairs

    config = load(config_path, [])
    try:
        with progress_bars() as bars:
            result = make_pairs(config, out, model, limit, bars)
    except registry_errors() as exc:
        raise fail(str(exc)) from None
    skipped = f"{result.same} skipped (the answer was the reference or empty)"
    if result.unusable:
        skipped += f", {result.unusable} skipped (the prompt does not end with the user's turn)"
    console.print(f"{result.written} pairs -> {escape(str(out))}; {skipped}", highlight=False, soft_wrap=True)
