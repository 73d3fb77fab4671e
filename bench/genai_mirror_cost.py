"""What mirroring one evaluation into MLflow's GenAI evaluation costs, per row.

Mirrors ROWS rows (two splits, the quickstart's scorers) onto a fresh run in a SQLite store in a
temporary directory, ``--repeats`` times, and prints per row: CPU seconds of this process (MLflow's
threads included), wall seconds, and bytes the store grew by (database and artifacts). Compare the
CPU figure with a trial's ``eval_seconds`` / rows evaluated: the mirror's share of an evaluation.
Usage: ``python bench/genai_mirror_cost.py [--rows 50] [--repeats 3]``. The last line reads

    rows=N cpu_ms_per_row=C wall_ms_per_row=W bytes_per_row=B
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness.evaluation.genai_mirror import mirror
from harness.tracking import Tracker


def rows(split: str, size: int) -> list[dict]:
    answer = "Use `reversed()`:\n\n```python\nfor x in reversed(items):\n    print(x)\n```\n" * 3
    return [
        {
            "id": f"{split}.jsonl:{i + 1}",
            "question": f"How do I reverse list {i} in Python without copying it?",
            "reference": answer,
            "answer": answer[: 40 + i],
            **{s: (i % 7) / 7 for s in ("structure", "detail", "embedding", "rouge_l", "consistency")},
        }
        for i in range(size)
    ]


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlruns/mlflow.db"
        tracker = Tracker(uri, "mirror-cost")
        tables = {"heldout": rows("heldout", args.rows // 2), "train": rows("train", args.rows - args.rows // 2)}
        mirror(uri, tracker.experiment_id, tracker.run("warm-up", {}), tables)  # imports, tables, first use
        cpu = wall = grown = 0.0
        for repeat in range(args.repeats):
            run_id = tracker.run(f"mirror-{repeat}", {})
            before, cpu0, wall0 = size_of(Path(tmp)), time.process_time(), time.perf_counter()
            mirror(uri, tracker.experiment_id, run_id, tables)
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            grown += size_of(Path(tmp)) - before
    n = args.rows * args.repeats
    print(
        f"rows={args.rows} cpu_ms_per_row={1000 * cpu / n:.1f} wall_ms_per_row={1000 * wall / n:.1f}"
        f" bytes_per_row={grown / n:.0f}"
    )


if __name__ == "__main__":
    main()
