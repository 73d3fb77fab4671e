"""``harness compare A B``: two runs' answers to each prompt side by side, worst first."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.cli.common import DEFAULT_TRACKING_URI, TrackingUri, app, fail, registry_errors
from harness.evaluation.side_by_side import Comparison, PairedAnswer, signed

NARROW_WIDTH = 80
ANSWER_LINES = 8  # per answer at 80 columns; --wide shows them whole


@app.command()
def compare(
    first: Annotated[
        str, typer.Argument(metavar="A", help="trial number, 'baseline', run id or models:/NAME/3, NAME@alias")
    ],
    second: Annotated[str, typer.Argument(metavar="B", help="the same kinds as A; differences are B - A")],
    study: Annotated[
        str | None, typer.Option(help="the study (experiment) that trial numbers and 'baseline' are in")
    ] = None,
    limit: Annotated[int, typer.Option(help="prompts shown in the terminal (0: all); the page has all")] = 10,
    wide: Annotated[bool, typer.Option(help="answers whole, as wide as the terminal")] = False,
    log: Annotated[bool, typer.Option(help="log the HTML page on the study's parent run")] = True,
    tracking_uri: TrackingUri = None,
) -> None:
    """Show the two answers to each prompt with per-scorer differences (B - A), worst for B first.

    The page (compare/A_vs_B.html, every prompt) goes onto the study's parent run in MLflow.
    """
    from harness.lifecycle.compare import compare as run_compare
    from harness.lifecycle.registry import client_for

    try:
        result = run_compare(client_for(tracking_uri or DEFAULT_TRACKING_URI), (first, second), study, log=log)
    except registry_errors() as exc:
        raise fail(str(exc)) from None
    labels = (result.sides[0].label, result.sides[1].label)
    out = Console(width=None if wide else min(NARROW_WIDTH, Console().width))
    shown = result.comparison.pairs if limit <= 0 else result.comparison.pairs[:limit]
    for paired in shown:
        out.print(pair_table(paired, labels, result.comparison.scorers, wide))
    out.print(summary(result.comparison, labels, len(shown)))
    if result.artifact:
        out.print(f"wrote {escape(result.artifact)} on the parent run {result.parent_run_id}", highlight=False)


def pair_table(paired: PairedAnswer, labels: tuple[str, str], scorers: tuple[str, ...], wide: bool) -> Table:
    """One prompt: the question, both answers in two columns, each scorer's difference below."""
    table = Table(
        title=Text(f"{paired.split} {paired.example_id}: {paired.question}"), title_justify="left", expand=True
    )
    for label in labels:
        table.add_column(label, ratio=1, overflow="fold")
    clip = None if wide else ANSWER_LINES
    table.add_row(*(Text(_clip(answer, clip)) for answer in paired.answers))
    table.caption = "  ".join(f"{s} {signed(paired.diff(s))}" for s in scorers)
    table.caption_justify = "left"
    return table


def _clip(text: str, lines: int | None) -> str:
    parts = text.splitlines() or [""]
    if lines is None or len(parts) <= lines:
        return text
    return "\n".join(parts[:lines]) + f"\n... ({len(parts) - lines} more lines)"


def summary(comparison: Comparison, labels: tuple[str, str], shown: int) -> Group:
    """Mean difference per scorer over the paired prompts, and what was left out."""
    table = Table(title=f"B - A over {len(comparison.pairs)} prompts (A = {labels[0]}, B = {labels[1]})")
    table.add_column("scorer")
    table.add_column("mean B-A", justify="right")
    table.add_column("B worse", justify="right")
    table.add_column("B better", justify="right")
    for scorer in comparison.scorers:
        diffs = [d for p in comparison.pairs if (d := p.diff(scorer)) is not None]
        mean = sum(diffs) / len(diffs) if diffs else None
        table.add_row(scorer, signed(mean), str(sum(d < 0 for d in diffs)), str(sum(d > 0 for d in diffs)))
    notes = []
    if shown < len(comparison.pairs):
        notes.append(f"{shown} of {len(comparison.pairs)} prompts shown, worst for B first (--limit 0: all)")
    if comparison.only_first or comparison.only_second:
        notes.append(f"unpaired: {comparison.only_first} rows only in A, {comparison.only_second} only in B")
    return Group(table, *(Text(n) for n in notes))
