"""A training price table (USD per 1M trained tokens by model) and what one epoch would cost.

The file is YAML or JSON (JSON is YAML): a mapping of model name -> price, plus ``model``, the
entry to use. The prices may also sit under ``prices``, like this::

    model: gpt-4o-mini-2024-07-18
    prices:
      gpt-4o-mini-2024-07-18: 3.0
      gpt-4.1-mini-2025-04-14: 5.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class PriceError(ValueError):
    """A price table that cannot be read or does not price the chosen model."""


@dataclass(frozen=True)
class Price:
    model: str
    usd_per_mtok: float

    def cost_usd(self, tokens: int) -> float:
        return tokens * self.usd_per_mtok / 1_000_000


def _prices(table: dict[str, Any], path: Path) -> dict[str, Any]:
    prices = table.get("prices", {k: v for k, v in table.items() if k != "model"})
    if not isinstance(prices, dict):
        raise PriceError(f"{path}: 'prices' must map model names to USD per 1M trained tokens")
    return prices


def price_for(table: Any, path: Path, model: str | None = None) -> Price:
    """The price of ``model`` (default: the table's ``model``) from a parsed table."""
    if not isinstance(table, dict):
        raise PriceError(f"{path}: expected a mapping of model -> USD per 1M trained tokens")
    chosen = model or table.get("model")
    if not isinstance(chosen, str) or not chosen:
        raise PriceError(f"{path}: name the model to price with a 'model' key")
    prices = _prices(table, path)
    value = prices.get(chosen)
    # bool is an int; a price of "true" is a typo, not one dollar.
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        known = ", ".join(sorted(str(k) for k in prices)) or "none"
        raise PriceError(f"{path}: no price (a number >= 0) for model {chosen!r}; priced: {known}")
    return Price(chosen, float(value))


def load_price(path: Path, model: str | None = None) -> Price:
    """Read a price table file and pick ``model`` (default: its ``model`` key)."""
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise PriceError(f"{path}: cannot read: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PriceError(f"{path}: not YAML or JSON: {exc}") from exc
    return price_for(table, path, model)
