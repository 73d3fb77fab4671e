"""Does the knowledge-injection study teach the facts? The study run once, its figures read back.

Runs ``harness sweep`` on experiments/knowledge_injection.yaml (or ``--config``) as its own process,
with its stores and weights under ``--out`` (a killed run resumes with the same command) and,
optionally, other data (``--train`` / ``--heldout``: the recipe on a data set it was not tuned on).
Then reads from MLflow and the Optuna study, never from the sweep's output:

- ``base_accuracy``: the untuned base's ``task/heldout/accuracy`` (its ``baseline`` run);
- ``best_accuracy``: the study's best trial's (``harness.study.report.best_trial``);
- ``ci_low``: the low end of that trial's paired interval against the baseline
  (``task/heldout/accuracy_vs_baseline_ci_low``; question groups resampled);
- ``correct_agreement`` / ``sampled_agreement``: the best trial's ``stability/heldout/*``
  (paraphrases of a question all right or all wrong; sampled answers to a prompt likewise);
- ``minutes``: the sweep process's wall time (model load and baseline included). The line before
  the last adds the load average before and after, and the CPU minutes the sweep used: on a
  machine shared with other jobs, CPU minutes / cores is closer to what it takes alone.

Target (issue 24): best_accuracy >= 0.80 and ci_low > 0 within 15 minutes on 2 cores.

    .venv/bin/python bench/knowledge_injection.py --out /tmp/knowledge_injection
    .venv/bin/python bench/knowledge_alt_data.py --out /tmp/knowledge_alt     # someone else's facts
    .venv/bin/python bench/knowledge_injection.py --out /tmp/ki_alt \
        --train /tmp/knowledge_alt/train.jsonl --heldout /tmp/knowledge_alt/heldout.jsonl

Last line: ``base_accuracy=F best_accuracy=F ci_low=F correct_agreement=F sampled_agreement=F minutes=F``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from harness import metrics
from harness.config import StudyConfig, load_config
from harness.lifecycle.evidence import baseline
from harness.storage import ATTR_RUN_ID
from harness.study.report import best_trial

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "knowledge_injection.yaml"
ACCURACY = metrics.MetricName(metrics.TASK, metrics.HELDOUT, metrics.ACCURACY)
CORRECT = metrics.MetricName(metrics.STABILITY, metrics.HELDOUT, metrics.CORRECT_AGREEMENT).key
SAMPLED = metrics.MetricName(metrics.STABILITY, metrics.HELDOUT, metrics.SAMPLED_AGREEMENT).key


def overrides(args: argparse.Namespace) -> list[str]:
    out = args.out
    data = [f"data.train_file={args.train.resolve()}"] if args.train else []
    data += [f"data.validation_file={args.heldout.resolve()}"] if args.heldout else []
    return [
        *data,
        f"mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
        f"storage=sqlite:///{out}/optuna.db",
        f"training.work_dir={out}/work",
        *args.overrides,
    ]


def sweep(args: argparse.Namespace) -> float:
    """Run the study as a user does; its wall time in minutes."""
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    started = time.perf_counter()
    command = [sys.executable, "-m", "harness.cli", "sweep", str(args.config), *overrides(args)]
    code = subprocess.run(command, check=False).returncode
    minutes = (time.perf_counter() - started) / 60
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    print(
        f"`harness sweep` took {minutes:.2f} min, {(used.ru_utime + used.ru_stime) / 60:.2f} CPU min"
        f" on {os.cpu_count()} cores; load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    if code:
        raise SystemExit(f"harness sweep exited {code} (its reason is printed above)")
    return minutes


def figures(config: StudyConfig) -> dict[str, float]:
    """The study's figures, read back from the Optuna study and the MLflow runs."""
    client = MlflowClient(config.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.study_name)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {config.study_name!r} in {config.mlflow.tracking_uri}")
    bases = baseline(client, experiment.experiment_id).runs
    if not bases:
        raise SystemExit("no finished baseline run: was evaluation.baseline set to false?")
    study = optuna.load_study(study_name=config.study_name, storage=config.storage)
    for trial in study.get_trials(deepcopy=False):
        print(f"  trial {trial.number}: {trial.state.name} value {trial.value} {trial.params}")
    best = best_trial(study)
    if best is None:
        raise SystemExit("no trial completed")
    found = client.get_run(best.user_attrs[ATTR_RUN_ID]).data.metrics
    _, low, high = ACCURACY.interval_keys()
    print(f"best: trial {best.number} {best.params}; accuracy interval vs base {found[low]:+.3f} .. {found[high]:+.3f}")
    return {
        "base_accuracy": bases[0].data.metrics[ACCURACY.key],
        "best_accuracy": found[ACCURACY.key],
        "ci_low": found[low],
        "correct_agreement": found[CORRECT],
        "sampled_agreement": found.get(SAMPLED, float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=Path("/tmp/knowledge_injection"))
    parser.add_argument("--train", type=Path, help="another training file (data.train_file)")
    parser.add_argument("--heldout", type=Path, help="another held-out file (data.validation_file)")
    parser.add_argument("overrides", nargs="*", help="more key=value config overrides, as for harness sweep")
    args = parser.parse_args()
    args.out = args.out.expanduser().resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    minutes = sweep(args)
    found = figures(load_config(args.config, overrides(args)))
    print(" ".join(f"{k}={v:.4f}" for k, v in found.items()) + f" minutes={minutes:.2f}")


if __name__ == "__main__":
    main()
