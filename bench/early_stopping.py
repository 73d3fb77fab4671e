"""Does pruning on the objective pay? The quickstart study twice, with and without pruning.

Both runs are the same study (experiments/quickstart.yaml: same sampler and seed, same search space,
``epochs`` fixed at 3 or more, the objective measured at each epoch's end), one with pruner ``none``
and one with the pruner under test (successive halving by default, Optuna's reduction factor 4,
min_resource 1 epoch). It reports the compute saved (1 - trained tokens with pruning / without: a
pruned trial trained only the epochs it reached), what measuring a checkpoint cost against an
epoch's training, and each run's best trial, with the paired interval of best_pruned - best_full on
the same held-out prompts. Target (issue 21): compute_saved >= 0.40, best_pruned no worse than
best_full by more than the interval's half-width.

    .venv/bin/python bench/early_stopping.py --trials 8 --epochs 3 --methods lora --out /tmp/early_stopping

``--methods lora`` narrows the search space to LoRA in both arms (full fine-tuning costs about twice
as much per token here and asks nothing else of pruning); without it, the quickstart's own space.
What to expect with 3 epochs: successive halving's one useful rung is epoch 1 (the next, epoch 4,
is past the end; a trial is never pruned at its last checkpoint, which would save nothing). Optuna
promotes a trial there when it is among the best 1/4 of the trials that reached the rung, or the best
so far while fewer than 4 did; for 8 trials in random order that is 1 + 1/2 + ... + 1/7 + 2/8 = 2.84
trials promoted on average, 8 + 2 x 2.84 = 13.7 epochs of 24: compute_saved 0.43 expected (0.40
with a reduction factor of 3). A sampler that improves makes later trials best so far more often.

Each arm is an ordinary study under --out with its own stores: killed, the same command resumes it.
``--arm full`` and ``--arm pruned`` run one arm each (two processes at once); ``--arm report`` runs
nothing and prints what the stores hold so far (the trials finished per arm and their tokens).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness import metrics
from harness.config import load_config
from harness.evaluation.paired import compare_rows
from harness.evaluation.tables import load_rows
from harness.storage import ATTR_RUN_ID
from harness.study import run_sweep
from harness.study.checkpoints import ATTR_TRAINED_EPOCHS
from harness.study.report import best_trial
from harness.tracking import PARENT_ROLE, TAG_ROLE

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
COLUMN = "consistency"  # the quickstart objective's per-prompt column (consistency/heldout/consistency)


def overrides(args: argparse.Namespace, name: str, pruner: str) -> list[str]:
    out = args.out.resolve()
    rungs = [] if args.reduction_factor is None else [f"pruner.reduction_factor={args.reduction_factor}"]
    methods = [] if args.methods is None else [f"search_space.method=[{args.methods}]"]
    return [
        f"study_name={name}",
        f"n_trials={args.trials}",
        f"search_space.epochs={args.epochs}",
        *methods,
        f"pruner.type={pruner}",
        *rungs,
        f"pruner.n_startup_trials={args.startup_trials}",
        "enqueue=[]",  # the quickstart's warm start trains 1 epoch: this bench fixes epochs, and samples every trial
        "confirm=null",  # confirmation repeats would add trials outside the with/without comparison
        "evaluation.baseline=false",  # the two runs are compared with each other, not with the base
        "evaluation.train_sample_size=0",  # the objective is held out; the train sample would only cost
        "mlflow.register_best=false",
        # One store per arm, so the two arms may run at once as two processes (--arm).
        f"mlflow.tracking_uri=sqlite:///{out}/{name}.mlflow.db",
        f"storage=sqlite:///{out}/{name}.optuna.db",
        f"training.work_dir={out}/work",
        "training.log_full_weights=none",  # ~540 MB per full fine-tune: not this bench's question
        "training.keep_local=1",
    ]


def run(args: argparse.Namespace, name: str, pruner: str) -> dict[str, Any]:
    config = load_config(QUICKSTART, overrides(args, name, pruner))
    started = time.perf_counter()
    run_sweep(config)
    return summary(args, name, pruner) | {"seconds": time.perf_counter() - started}


def summary(args: argparse.Namespace, name: str, pruner: str) -> dict[str, Any]:
    """One arm as its study storage and MLflow store have it (finished or not): trials, trained
    tokens, the best trial and its held-out rows, and what measuring each checkpoint cost."""
    config = load_config(QUICKSTART, overrides(args, name, pruner))
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"{name}: not started"
    parent = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = '{PARENT_ROLE}'")[0]
    per_epoch = float(parent.data.params["data.train_trained_tokens"])
    study = optuna.load_study(study_name=name, storage=config.storage)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    tokens, costs = 0.0, []
    for t in trials:
        epochs = t.user_attrs.get(ATTR_TRAINED_EPOCHS, 0.0) if t.state == TrialState.PRUNED else args.epochs
        tokens += epochs * per_epoch
        run_id = t.user_attrs[ATTR_RUN_ID]
        points = [m.value for m in client.get_metric_history(run_id, metrics.CHECKPOINT_EVAL_SECONDS)]
        data = client.get_run(run_id).data
        costs.append((points, data.metrics.get(metrics.EPOCH_TRAIN_SECONDS_MEAN)))
        print(f"  {name} trial {t.number}: {t.state.name} epochs {epochs} value {t.value} {t.params}", flush=True)
    best = best_trial(study)  # the study's own choice: its direction, and confirmation when configured
    rows = load_rows(client, best.user_attrs[ATTR_RUN_ID], "heldout") if best is not None else []
    return {"trials": trials, "tokens": tokens, "best": best, "rows": rows, "costs": costs, "seconds": 0.0}


def cost_line(arms: list[dict[str, Any]]) -> str:
    """Seconds to measure one checkpoint against an epoch's training seconds, over every trial that
    finished (a pruned trial logs its checkpoints but no epoch mean)."""
    points = [p for arm in arms for checkpoints, _ in arm["costs"] for p in checkpoints]
    epochs = [e for arm in arms for _, e in arm["costs"] if e is not None]
    if not points or not epochs:
        return "checkpoint cost: nothing measured yet"
    checkpoint, epoch = statistics.mean(points), statistics.mean(epochs)
    return (
        f"checkpoint cost: {checkpoint:.1f} s per checkpoint evaluation ({len(points)} checkpoints, median"
        f" {statistics.median(points):.1f}) vs {epoch:.1f} s per epoch of training ({len(epochs)} trials):"
        f" ratio {checkpoint / epoch:.2f} (target < 0.33)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pruner", default="successive_halving")
    parser.add_argument(
        "--reduction-factor", type=int, default=None, help="hyperband/successive halving; default: the config's"
    )
    parser.add_argument("--startup-trials", type=int, default=2, help="median/percentile only")
    parser.add_argument(
        "--methods", default=None, help="narrow search_space.method for both arms, e.g. lora (default: the config's)"
    )
    parser.add_argument(
        "--arm",
        choices=["both", "full", "pruned", "report"],
        default="both",
        help="run one arm only (two processes at once); 'both' runs (or resumes) both and reports;"
        " 'report' runs nothing: what the stores hold so far",
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/early_stopping"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.arm == "report":
        full, pruned = summary(args, "early_full", "none"), summary(args, f"early_{args.pruner}", args.pruner)
    else:
        full = run(args, "early_full", "none") if args.arm != "pruned" else {}
        pruned = run(args, f"early_{args.pruner}", args.pruner) if args.arm != "full" else {}
    print(cost_line([arm for arm in (full, pruned) if arm]))
    if full and pruned:
        report(args, full, pruned)


def report(args: argparse.Namespace, full: dict[str, Any], pruned: dict[str, Any]) -> None:
    done = {arm: len(data["trials"]) for arm, data in (("full", full), ("pruned", pruned))}
    if min(done.values()) < args.trials or full["best"] is None or pruned["best"] is None:
        print(
            f"partial: trials finished {done} of {args.trials} each; trained tokens full {full['tokens']:.0f},"
            f" pruned {pruned['tokens']:.0f}; best so far full {full['best'] and full['best'].value},"
            f" pruned {pruned['best'] and pruned['best'].value}"
        )
        return
    diff = compare_rows(pruned["rows"], full["rows"], COLUMN, level=0.9, resamples=2000)
    assert diff is not None, "the best trials' held-out tables share no prompt"
    half_width = (diff.high - diff.low) / 2
    n_pruned = sum(t.state == TrialState.PRUNED for t in pruned["trials"])
    saved = 1 - pruned["tokens"] / full["tokens"]
    best_full, best_pruned = full["best"].value, pruned["best"].value
    print(
        f"wall (this process): without pruning {full['seconds'] / 60:.1f} min, with {pruned['seconds'] / 60:.1f} min;"
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
