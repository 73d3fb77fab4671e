"""How much does one configuration's score move with the training seed, and does the same seed repeat?

One configuration (the quickstart's: experiments/quickstart.yaml, its data and evaluation; the
parameters below unless ``--params``) is trained once per seed in ``--seeds`` and once more with the
first seed, as trials of one study under ``--out`` (so the untuned base is evaluated once, and a
killed run resumes with the same command). Reported:

- ``same_seed_max_abs_diff``: the largest difference, over the held-out prompts' composite scores
  and the objective, between the two runs with the same seed (0 when training is deterministic);
- ``seed_sd``: the standard deviation over seeds of the held-out composite (the mean over prompts);
- ``best_gain`` and ``best_gain_ci_low``: the configuration's held-out composite minus the untuned
  base's, mean over seeds and prompts, and the low end of its interval from the two-level bootstrap
  over seeds and prompts (harness.evaluation.seeds.seeded_bootstrap; the study's confidence level).

    .venv/bin/python bench/seed_variance.py --out /tmp/seed_variance                 # 5 seeds + a repeat
    .venv/bin/python bench/seed_variance.py --quick --out /tmp/seed_variance_quick   # 2 seeds, 2 steps, 6 prompts

Last line: ``same_seed_max_abs_diff=F seed_sd=F best_gain=F best_gain_ci_low=F``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness.config import StudyConfig, load_config
from harness.evaluation.paired import align
from harness.evaluation.seeds import compare_seeded_rows
from harness.evaluation.tables import load_rows
from harness.lifecycle.evidence import baseline
from harness.storage import ATTR_RUN_ID

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
# The quickstart's warm start (its `enqueue` entry), every key fixed, so the bench trains it whatever
# the quickstart's search space offers.
PARAMS = {
    "method": "lora",
    "lora_rank": 16,
    "lora_alpha": 32,
    "lora_target_modules": ["all-linear"],
    "epochs": 1,
    "batch_size": 4,
    "lr_multiplier": 5.0,
    "dropout": 0.0,
}
COLUMN = "consistency"  # the per-prompt held-out composite (objective consistency/heldout/consistency)
QUICK = [  # a check that the bench runs, in minutes (with one epoch): 2 steps, 6 held-out prompts, short answers
    "search_space.training_args.max_steps=2",
    "evaluation.heldout_sample_size=6",
    "evaluation.max_new_tokens=48",
    "evaluation.during_training=false",
]
STUDY = "seed_variance"


def overrides(params: dict[str, Any], out: Path, seed: int, trials: int) -> list[str]:
    fixed = [f"search_space.{k}={json.dumps(v)}" for k, v in params.items()]
    return [
        *fixed,
        f"study_name={STUDY}",
        f"n_trials={trials}",  # one more trial per run: the study grows by this seed's trial
        f"training.seed={seed}",
        "sampler.type=random",  # every value is fixed: nothing to search
        "enqueue=[]",  # one run per seed: no warm start
        "confirm=null",  # and no repeats: the seeds are this bench's own
        "pruner.type=none",  # a seed's trial must run to the end, whatever the others scored
        "evaluation.train_sample_size=0",  # the gain is held out; the train sample would only cost
        "mlflow.register_best=false",
        f"mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
        f"storage=sqlite:///{out}/optuna.db",
        f"training.work_dir={out}/work",
        "training.log_full_weights=none",
        "training.keep_local=0",  # the weights are not this bench's question
    ]


def train_all(args: argparse.Namespace) -> tuple[StudyConfig, list[optuna.trial.FrozenTrial]]:
    """One trial per seed, then the first seed again; trials already in the study are kept.

    Each run is its own ``harness sweep`` process, as a user reruns a configuration: runs in one
    process would share its base model, which the first run's baseline evaluation leaves changed.
    """
    seeds = [*args.seeds, args.seeds[0]]
    for index, seed in enumerate(seeds):
        extra = [*overrides(args.params, args.out, seed, index + 1), *(QUICK if args.quick else [])]
        started = time.perf_counter()
        command = [sys.executable, "-m", "harness.cli", "sweep", str(args.config), *extra]
        code = subprocess.run(command, check=False).returncode
        print(f"seed {seed}: `harness sweep` took {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            raise SystemExit(f"seed {seed}: harness sweep exited {code} (its reason is printed above)")
    config = load_config(args.config, overrides(args.params, args.out, seeds[0], len(seeds)))
    trials = optuna.load_study(study_name=STUDY, storage=config.storage).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(complete) != len(seeds):
        raise SystemExit(f"{len(complete)} complete trials for {len(seeds)} runs: start again with a new --out")
    return config, complete


def objective(trial: optuna.trial.FrozenTrial) -> float:
    return trial.values[0] if trial.values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=QUICKSTART)
    parser.add_argument("--params", type=json.loads, default=PARAMS, help="the configuration, as JSON")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], help="default 0,1,2,3,4 (quick: 0,1)")
    parser.add_argument("--quick", action="store_true", help="1 epoch of 2 steps, 6 held-out prompts, 48-token answers")
    parser.add_argument("--out", type=Path, default=Path("/tmp/seed_variance"))
    args = parser.parse_args()
    args.seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    args.params = {**args.params, "epochs": 1} if args.quick else args.params
    if len(args.seeds) < 2 or len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds: at least two different seeds")
    args.out = args.out.expanduser().resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"configuration: {args.params}, seeds {args.seeds} and {args.seeds[0]} again", flush=True)

    config, trials = train_all(args)
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    # The study's finished baseline run, as `harness promote` finds it (not a killed one).
    baselines = baseline(client, experiment).runs
    if not baselines:
        raise SystemExit("no finished baseline run: was evaluation.baseline set to false?")
    base_rows = load_rows(client, baselines[0].info.run_id, "heldout")
    rows = [load_rows(client, t.user_attrs[ATTR_RUN_ID], "heldout") for t in trials]
    if base_rows is None or any(r is None for r in rows):
        raise SystemExit("a run has no held-out table: was evaluation.enabled set to false?")
    tables = [r for r in rows if r is not None]
    for trial, seed in zip(trials, [*args.seeds, args.seeds[0]], strict=True):
        recorded = client.get_run(trial.user_attrs[ATTR_RUN_ID]).data.params.get("training_seed", "?")
        print(f"  trial {trial.number}: seed {seed} (recorded {recorded}) held-out composite {objective(trial):.4f}")

    first, again = align(tables[0], tables[-1], COLUMN)
    gaps = [abs(a - b) for a, b in zip(first, again, strict=True) if a is not None and b is not None]
    same_seed = max([*gaps, abs(objective(trials[0]) - objective(trials[-1]))])
    evaluation = config.evaluation
    gain = compare_seeded_rows(
        tables[:-1], [base_rows], COLUMN, level=evaluation.confidence_level, resamples=evaluation.bootstrap_resamples
    )
    if gain is None:
        raise SystemExit("the runs and the baseline share no held-out prompt")
    print(f"gain over the untuned base: {gain.describe()}")
    print(
        f"same_seed_max_abs_diff={same_seed:.6f} seed_sd={gain.seed_sd:.4f}"
        f" best_gain={gain.mean:.4f} best_gain_ci_low={gain.low:.4f}"
    )


if __name__ == "__main__":
    main()
