"""Two evaluations of the same prompts, answer by answer: what ``harness compare`` shows.

Pure: rows in (each run's ``eval/{split}.json``), pairs and an HTML page out. MLflow's GenAI
evaluation lists one run's rows; it has no row-by-row comparison of two runs, which this is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.evaluation.genai_mirror import MIRRORED, present
from harness.metrics import HELDOUT
from harness.settings.evaluation import COMPOSITE


@dataclass(frozen=True)
class PairedAnswer:
    """One prompt answered by both sides, with each side's scores."""

    split: str
    example_id: str
    question: str
    reference: str
    answers: tuple[str, str]
    scores: tuple[Mapping[str, float], Mapping[str, float]]

    def diff(self, scorer: str) -> float | None:
        """Second side minus first; None when either side lacks that score."""
        a, b = (side.get(scorer) for side in self.scores)
        return None if a is None or b is None else b - a


@dataclass(frozen=True)
class Comparison:
    """The pairs, worst for the second side first, and what could not be paired."""

    pairs: list[PairedAnswer]
    scorers: tuple[str, ...]
    key: str | None  # the scorer the order follows
    only_first: int = 0
    only_second: int = 0
    splits: tuple[str, ...] = field(default_factory=tuple)


def _scores(row: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(row[name]) for name in MIRRORED if present(row.get(name))}


def _keyed(rows: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(row.get("id") or index): row for index, row in enumerate(rows)}


def pair(
    first: Mapping[str, Sequence[Mapping[str, Any]]], second: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Comparison:
    """Pair the rows of both sides by split and example id, worst difference first.

    The order follows the composite (else the first scorer both sides have): the prompts where the
    second side lost most against the first come first; pairs without that score come last.
    """
    pairs: list[PairedAnswer] = []
    only_first = only_second = 0
    splits = sorted(set(first) & set(second), key=lambda s: (s != HELDOUT, s))
    for split in splits:
        a, b = _keyed(first[split]), _keyed(second[split])
        only_first += len(a.keys() - b.keys())
        only_second += len(b.keys() - a.keys())
        for example_id in [k for k in a if k in b]:
            ra, rb = a[example_id], b[example_id]
            pairs.append(
                PairedAnswer(
                    split,
                    example_id,
                    str(ra.get("question", "")),
                    str(ra.get("reference", "")),
                    (str(ra.get("answer", "")), str(rb.get("answer", ""))),
                    (_scores(ra), _scores(rb)),
                )
            )
    scorers = tuple(n for n in MIRRORED if any(p.diff(n) is not None for p in pairs))
    key = COMPOSITE if COMPOSITE in scorers else (scorers[0] if scorers else None)
    ordered = sorted(pairs, key=lambda p: _order(p, key))
    return Comparison(ordered, scorers, key, only_first, only_second, tuple(splits))


def _order(paired: PairedAnswer, key: str | None) -> tuple[bool, float, str, str]:
    diff = paired.diff(key) if key is not None else None
    return (diff is None, math.inf if diff is None else diff, paired.split, paired.example_id)


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def render_html(comparison: Comparison, labels: tuple[str, str], title: str) -> str:
    """A self-contained page: per prompt, both answers side by side and each scorer's difference."""
    esc = html.escape
    head = "".join(f"<th>{esc(s)}</th>" for s in comparison.scorers)
    summary = "".join(
        f"<tr><td>{esc(p.split)}</td><td><a href='#p{i}'>{esc(p.example_id)}</a></td>"
        + "".join(f"<td class='{_tone(p.diff(s))}'>{signed(p.diff(s))}</td>" for s in comparison.scorers)
        + "</tr>"
        for i, p in enumerate(comparison.pairs)
    )
    blocks = "".join(_block(i, p, labels, comparison.scorers) for i, p in enumerate(comparison.pairs))
    unpaired = f"<p>Unpaired rows: {comparison.only_first} only in A, {comparison.only_second} only in B.</p>"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1><p>A = {esc(labels[0])}, B = {esc(labels[1])}. Differences are B &minus; A,"
        f" worst for B first (by {esc(comparison.key or 'nothing')}).</p>{unpaired}"
        f"<table class='summary'><tr><th>split</th><th>id</th>{head}</tr>{summary}</table>{blocks}</body></html>"
    )


def _tone(diff: float | None) -> str:
    return "" if diff is None or abs(diff) < 1e-9 else ("worse" if diff < 0 else "better")


def _block(index: int, paired: PairedAnswer, labels: tuple[str, str], scorers: Sequence[str]) -> str:
    esc = html.escape
    diffs = " ".join(f"<span class='{_tone(paired.diff(s))}'>{esc(s)} {signed(paired.diff(s))}</span>" for s in scorers)
    return (
        f"<section id='p{index}'><h2>{esc(paired.split)} &middot; {esc(paired.example_id)}</h2>"
        f"<p class='diffs'>{diffs}</p><p class='q'>{esc(paired.question)}</p>"
        f"<details><summary>reference</summary><pre>{esc(paired.reference)}</pre></details>"
        f"<div class='sides'><div><h3>A: {esc(labels[0])}</h3><pre>{esc(paired.answers[0])}</pre></div>"
        f"<div><h3>B: {esc(labels[1])}</h3><pre>{esc(paired.answers[1])}</pre></div></div></section>"
    )


_CSS = (
    "body{font-family:sans-serif;margin:1em 2em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"
    ".sides{display:grid;grid-template-columns:1fr 1fr;gap:1em}.worse{color:#b00}.better{color:#070}"
    "table.summary td,table.summary th{padding:0 .6em;text-align:right}.q{font-weight:bold}"
)
