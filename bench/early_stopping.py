"""Does pruning on the objective pay? The quickstart study twice, with and without pruning.

Both runs are the same study (experiments/quickstart.yaml: same sampler and seed, same search space,
``epochs`` fixed at 3 or more, the objective measured at each epoch's end), one with pruner ``none``
and one with the pruner under test (successive halving by default). It reports the compute saved
(1 - trained tokens with pruning / without: a pruned trial trained only the epochs it reached) and
each run's best trial, with the paired interval of best_pruned - best_full on the same held-out
prompts. Target (issue 21): compute_saved >= 0.40, best_pruned no worse than best_full by more
than the interval's half-width.

    .venv/bin/python bench/early_stopping.py --trials 8 --epochs 3 --out /tmp/early_stopping

Each run is an ordinary study under --out: killed, the same command resumes it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.config import load_config
from harness.evaluation.paired import compare_rows
from harness.evaluation.tables import load_rows
from harness.storage import ATTR_RUN_ID
from harness.study import run_sweep
from harness.study.checkpoints import ATTR_TRAINED_EPOCHS
from harness.study.report import best_trial

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
COLUMN = "consistency"  # the quickstart objective's per-prompt column (consistency/heldout/consistency)


def overrides(args: argparse.Namespace, name: str, pruner: str) -> list[str]:
    out = args.out.resolve()
    return [
        f"study_name={name}",
        f"n_trials={args.trials}",
        f"search_space.epochs={args.epochs}",
        f"pruner.type={pruner}",
        f"pruner.reduction_factor={args.reduction_factor}",
        f"pruner.n_startup_trials={args.startup_trials}",
        "evaluation.baseline=false",  # the two runs are compared with each other, not with the base
        "evaluation.train_sample_size=0",  # the objective is held out; the train sample would only cost
        "mlflow.register_best=false",
        f"mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
        f"storage=sqlite:///{out}/optuna.db",
        f"training.work_dir={out}/work",
        "training.log_full_weights=none",  # ~540 MB per full fine-tune: not this bench's question
        "training.keep_local=1",
    ]


def run(args: argparse.Namespace, name: str, pruner: str) -> dict[str, Any]:
    config = load_config(QUICKSTART, overrides(args, name, pruner))
    started = time.perf_counter()
    result = run_sweep(config)
    seconds = time.perf_counter() - started
    client = MlflowClient(config.mlflow.tracking_uri)
    per_epoch = float(client.get_run(result.parent_run_id).data.params["data.train_trained_tokens"])
    study = optuna.load_study(study_name=name, storage=config.storage)
    trials = study.get_trials(deepcopy=False)
    tokens = 0.0
    for t in trials:
        epochs = t.user_attrs.get(ATTR_TRAINED_EPOCHS, 0.0) if t.state == TrialState.PRUNED else args.epochs
        tokens += epochs * per_epoch if t.state in (TrialState.COMPLETE, TrialState.PRUNED) else 0.0
        print(f"  {name} trial {t.number}: {t.state.name} epochs {epochs} value {t.value} {t.params}", flush=True)
    best = best_trial(study)  # the study's own choice: its direction, and confirmation when configured
    assert best is not None, f"{name}: no trial completed"
    rows = load_rows(client, best.user_attrs[ATTR_RUN_ID], "heldout")
    return {"trials": trials, "tokens": tokens, "best": best, "rows": rows, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pruner", default="successive_halving")
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--startup-trials", type=int, default=2, help="median/percentile only")
    parser.add_argument("--out", type=Path, default=Path("/tmp/early_stopping"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    full = run(args, "early_full", "none")
    pruned = run(args, f"early_{args.pruner}", args.pruner)
    diff = compare_rows(pruned["rows"], full["rows"], COLUMN, level=0.9, resamples=2000)
    assert diff is not None, "the best trials' held-out tables share no prompt"
    half_width = (diff.high - diff.low) / 2
    n_pruned = sum(t.state == TrialState.PRUNED for t in pruned["trials"])
    saved = 1 - pruned["tokens"] / full["tokens"]
    best_full, best_pruned = full["best"].value, pruned["best"].value
    print(
        f"wall: without pruning {full['seconds'] / 60:.1f} min, with {pruned['seconds'] / 60:.1f} min;"
        f" best_pruned - best_full {diff.mean:+.4f} (90% paired interval {diff.low:+.4f} .. {diff.high:+.4f},"
        f" half-width {half_width:.4f}); target compute_saved >= 0.40:"
        f" {'met' if saved >= 0.40 and best_pruned >= best_full - half_width else 'NOT met'}"
    )
    print(
        f"trials={len(pruned['trials'])} pruned={n_pruned} compute_saved={saved:.3f}"
        f" best_full={best_full:.4f} best_pruned={best_pruned:.4f}"
    )


if __name__ == "__main__":
    main()
