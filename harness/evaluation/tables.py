"""Read back the per-example tables an evaluation logs on its run (``eval/{split}.json``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


def table_path(split: str) -> str:
    return f"eval/{split}.json"


def parse_table(payload: Any) -> list[dict[str, Any]]:
    """Rows from a table file. ``MlflowClient.log_table`` writes pandas' ``orient="split"``
    (``{"columns": [...], "data": [[...], ...]}``, NaN as null); a list of records is read too."""
    if isinstance(payload, dict) and isinstance(payload.get("columns"), list) and isinstance(payload.get("data"), list):
        columns = [str(c) for c in payload["columns"]]
        return [dict(zip(columns, values, strict=True)) for values in payload["data"]]
    if isinstance(payload, list) and all(isinstance(row, dict) for row in payload):
        return [dict(row) for row in payload]
    raise ValueError(f"not a table: expected split-oriented JSON or a list of records, got {type(payload).__name__}")


def load_rows(client: Any, run_id: str, split: str) -> list[dict[str, Any]] | None:
    """The run's per-example rows for ``split``; None when the run has no such table."""
    path = table_path(split)
    # Listing first: a missing artifact raises store-specific errors from download_artifacts.
    if path not in {a.path for a in client.list_artifacts(run_id, path.rpartition("/")[0])}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        # json, not pandas.read_json: that would guess dtypes (dates, ints) from the text.
        return parse_table(json.loads(Path(local).read_text(encoding="utf-8")))
