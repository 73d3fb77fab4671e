"""Scoring commands: score answers made anywhere, check how far to trust the judge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import app, console, fail, load, setup_errors
from harness.metrics import ACCURACY, ANSWERS, CONSISTENCY, JUDGE, TASK, MetricName, try_parse


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
        raise fail(f"--scorers: unknown {', '.join(bad)}; known: {', '.join(known)}")
    config = load(config_path, [])
    from harness.evaluation.answers import load_answers, score_answers, write_jsonl

    try:
        records = load_answers(answers_path)  # every line checked before anything is scored
        result = score_answers(config.evaluation, records, chosen or config.evaluation.scorers)
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    _print_scores(result.rows, result.metrics)
    if out is not None:
        write_jsonl(result.rows, out)
        console.print(f"wrote {len(result.rows)} rows to {out}")


def _print_scores(rows: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    from harness.evaluation.scoring import TEXT_COLUMNS
    from harness.evaluation.task import TEXT_COLUMNS as CHECK_TEXT

    columns = [k for k in rows[0] if k not in (*TEXT_COLUMNS, *CHECK_TEXT)]
    table = Table(title="scores per answer")
    for column in ("id", "question", *columns):
        table.add_column(column)
    for row in rows:
        values = ["" if row[c] is None else f"{row[c]:.3f}" for c in columns]
        table.add_row(str(row.get("id", "")), row["question"][:48], *values)
    keys = [MetricName(CONSISTENCY, ANSWERS, c).key for c in columns]
    means = [f"{metrics[k]:.3f}" if k in metrics else "" for k in keys]
    table.add_row("mean", "", *means, style="bold")
    Console().print(table)
    _print_checks(rows, metrics)


def _print_checks(rows: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    """Task accuracy (and stability over groups), and the first answers whose checks failed."""
    from harness.evaluation.task import CORRECT, FAILED_CHECKS

    if MetricName(TASK, ANSWERS, ACCURACY).key not in metrics:
        return
    shown = {k: v for k, v in metrics.items() if (name := try_parse(k)) is not None and name.family != CONSISTENCY}
    for key, value in sorted(shown.items()):
        console.print(f"{key} {value:.3f}", highlight=False)
    failed = [r for r in rows if r.get(CORRECT) == 0.0]
    for row in failed[:5]:
        console.print(f"  wrong: {row.get('id', '')}: {escape(str(row[FAILED_CHECKS]))}", highlight=False)
    if len(failed) > 5:
        console.print(f"  wrong: ... and {len(failed) - 5} more (--out writes every row)", highlight=False)


@app.command(name="judge-check")
def judge_check(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="study YAML (its judge, rubric and data)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides")] = None,
) -> None:
    """How far to trust the judge: does it rank controlled variants of the training answers right?

    Exit code 0 when its overall accuracy reaches evaluation.judge.min_check_accuracy, 1 when not.
    """
    config = load(config_path, overrides or [])
    from harness.evaluation.judge_check import run_check

    try:
        results = run_check(config)
    except setup_errors() as exc:
        raise fail(str(exc)) from None
    _print_check(results, config.evaluation.judge.min_check_accuracy)
    judge = next(r for r in results if r.scorer == JUDGE)
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
        table.add_row(result.scorer, *cells, style="bold" if result.scorer == JUDGE else None)
    Console().print(table)
    console.print("cells: accuracy (mean score gap, better minus worse variant, in the scorer's units)")
