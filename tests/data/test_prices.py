"""harness.data.prices: a price table file and the arithmetic of one epoch's cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.prices import Price, PriceError, load_price


def test_cost_is_tokens_times_usd_per_million() -> None:
    assert Price("m", 3.0).cost_usd(2_500_000) == pytest.approx(7.5)
    assert Price("m", 25.0).cost_usd(40_000) == pytest.approx(1.0)
    assert Price("m", 0.0).cost_usd(10**9) == 0.0


def test_flat_yaml_and_nested_json_tables(tmp_path: Path) -> None:
    flat = tmp_path / "prices.yaml"
    flat.write_text("model: small\nsmall: 1.5\nbig: 25\n")
    assert load_price(flat) == Price("small", 1.5)
    assert load_price(flat, model="big") == Price("big", 25.0)
    nested = tmp_path / "prices.json"
    nested.write_text(json.dumps({"model": "big", "prices": {"small": 1.5, "big": 25}}))
    assert load_price(nested) == Price("big", 25.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("small: 1.5\n", "'model'"),
        ("model: other\nsmall: 1.5\n", "'other'"),
        ("model: small\nsmall: cheap\n", "'small'"),
        ("model: small\nsmall: true\n", "'small'"),
        ("model: small\nsmall: -1\n", "'small'"),
        ("- 1\n- 2\n", "mapping"),
        ("model: [\n", "not YAML"),
    ],
)
def test_bad_tables_are_refused_with_the_path(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceError, match=expected) as error:
        load_price(path)
    assert str(error.value).startswith(str(path))
