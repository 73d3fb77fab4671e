"""Paired comparison of two evaluations of the same prompts: the mean per-example difference and
a percentile bootstrap interval for it. Pure: no I/O, numpy only.

Pairing matters: both models answer the same questions, so the question's own difficulty cancels
in the per-example difference and the interval is much narrower than one from two unpaired means.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.metrics import interval_keys

# A per-example value: one numeric column, or a weighted sum of columns (a composite objective).
Column = str | Mapping[str, float]
# Bootstrap draws are made in chunks of at most this many indices, so memory stays flat for large n.
_CHUNK_INDICES = 4_000_000
# Differences this close are one value (a constant shift computed in floating point).
SAME = 1e-12


@dataclass(frozen=True)
class PairedDiff:
    """Mean of (a - b) over ``n`` pairs and its ``level`` bootstrap interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def clears(self, min_delta: float) -> bool:
        """Whether even the interval's lower end is above ``min_delta``."""
        return self.low > min_delta

    def negated(self) -> PairedDiff:
        """The interval of (b - a)."""
        return replace(self, mean=-self.mean, low=-self.high, high=-self.low)

    def as_metrics(self, key: str) -> dict[str, float]:
        """The mean under ``key`` and the interval's ends beside it."""
        return dict(zip(interval_keys(key), (self.mean, self.low, self.high), strict=True))

    def describe(self) -> str:
        """E.g. ``+0.041 [90% CI +0.012, +0.070], n=40``."""
        return f"{self.mean:+.3g} [{self.level:.0%} CI {self.low:+.3g}, {self.high:+.3g}], n={self.n}"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def number_or_none(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, infinite or non-numeric values (bools included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def paired_bootstrap(
    a: Sequence[float | None], b: Sequence[float | None], *, level: float = 0.9, resamples: int = 2000, seed: int = 0
) -> PairedDiff:
    """Mean of (a_i - b_i) over the pairs where both are present, with a percentile bootstrap
    interval from resampling pair indices. Raises ValueError when no pair is complete."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    check_bootstrap(level, resamples)
    pairs = [
        (x, y)
        for x, y in zip(map(number_or_none, a), map(number_or_none, b), strict=True)
        if x is not None and y is not None
    ]
    if not pairs:
        raise ValueError("no pair has both values")
    diffs = np.array([x - y for x, y in pairs], dtype=float)
    n = len(diffs)
    if np.ptp(diffs) <= SAME:
        # Every resample has the same mean: the interval is that point, without resampling's rounding.
        point = float(diffs.mean())
        return PairedDiff(point, point, point, n, level)
    means = np.concatenate([diffs[draw].mean(axis=1) for draw in index_draws(n, resamples, seed)])
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return PairedDiff(float(diffs.mean()), float(low), float(high), n, level)


def check_bootstrap(level: float, resamples: int) -> None:
    """ValueError for a level outside (0, 1) or fewer than one resample."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def index_draws(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` draws of ``n`` indices in [0, n) with replacement, in chunks of rows that keep
    memory flat; the same ``seed`` gives the same draws to every bootstrap that uses them."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_INDICES // n)
    for start in range(0, resamples, per_chunk):
        yield rng.integers(0, n, size=(min(per_chunk, resamples - start), n))


def row_value(row: Mapping[str, Any], column: Column) -> float | None:
    """A row's numeric value in ``column``; for a weighted composite, the weighted sum of its
    columns (None if any of them is missing: a partial sum is not comparable)."""
    if isinstance(column, str):
        return number_or_none(row.get(column))
    values = [number_or_none(row.get(name)) for name in column]
    if any(v is None for v in values):
        return None
    return sum(weight * v for weight, v in zip(column.values(), values, strict=True) if v is not None)


def _canonical(value: Any) -> Any:
    # A JSON round trip through pandas turns an int id into 1.0 when another row lacks one.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, Hashable) else repr(value)


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies an example across evaluations: its ``id``, else (question, reference)."""
    if _present(row.get("id")):
        return ("id", _canonical(row["id"]))
    return ("text", _canonical(row.get("question")), _canonical(row.get("reference")))


def keyed_rows(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    """Rows by key; a repeated key gets its occurrence number, so duplicates pair in order."""
    seen: dict[tuple[Any, ...], int] = {}
    keyed = {}
    for row in rows:
        key = row_key(row)
        seen[key] = seen.get(key, 0) + 1
        keyed[(*key, seen[key])] = row
    return keyed


def align(
    rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], column: Column
) -> tuple[list[float | None], list[float | None]]:
    """Values of ``column`` in the examples both evaluations scored, in the order of ``rows_a``.
    Rows present in only one are dropped; missing or non-numeric values are None."""
    by_key = keyed_rows(rows_b)
    a, b = [], []
    for key, row in keyed_rows(rows_a).items():
        other = by_key.get(key)
        if other is not None:
            a.append(row_value(row, column))
            b.append(row_value(other, column))
    return a, b


def compare_rows(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    column: Column,
    *,
    level: float,
    resamples: int,
    seed: int = 0,
) -> PairedDiff | None:
    """The paired interval of (a - b) on ``column``; None when no aligned pair has both values."""
    a, b = align(rows_a, rows_b, column)
    if not any(x is not None and y is not None for x, y in zip(a, b, strict=True)):
        return None
    return paired_bootstrap(a, b, level=level, resamples=resamples, seed=seed)
