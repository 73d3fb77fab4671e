"""A quiet terminal: the commands print the harness's own progress, tables and errors, in 80 columns.

Other libraries' noise is checked in real processes (pytest captures warnings and logs in its
own), with the ``harness`` a user runs; ``--verbose`` brings it back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.cli.quiet import QUIET_ENV

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
# What other libraries print when let: warnings, tqdm bars, Optuna's log lines.
FOREIGN = re.compile(r"Warning:|\d+%\|| it/s\]|\[[IW] \d{4}-|Loading weights|Downloading artifacts|color_warning")
RUN_ID = "4d94efa30d78464c9449c26a9f2bfc76"

NOISY = """
import sys, warnings
from harness.cli import quiet
quiet.configure(verbose=sys.argv[1] == "verbose")
import optuna, transformers
from optuna.storages import RetryHeartbeatStaleTrialCallback
from tqdm.auto import tqdm
import harness.lifecycle.serving  # its pyfunc model: MLflow's "add type hints" warning
RetryHeartbeatStaleTrialCallback(max_retry=1)  # ExperimentalWarning
def objective(trial):
    if trial.suggest_categorical("method", ["lora", "full"]) == "lora":
        trial.suggest_categorical("lora_rank", [8, 16])  # only some trials have it
    return trial.suggest_float("x", 0, 1)
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))  # "[I ...] A new study created"
study.optimize(objective, n_trials=3)
optuna.importance.get_param_importances(study)  # PED-ANOVA: "Some regimes for parameter `lora_rank`"
transformers.utils.logging.get_logger("transformers.modeling_utils").warning("advice")
for _ in transformers.utils.logging.tqdm(range(3), desc="Loading weights"):
    pass
for _ in tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):  # transformers' GGUF loader
    pass
print("done")
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what an in-process CLI call left in it."""
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    return {**env, "PYTHONPATH": str(ROOT), "COLUMNS": "80", **extra}


def test_other_libraries_noise_is_silenced_and_verbose_shows_it() -> None:
    def run(mode: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", NOISY, mode]
        return subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=300, check=True)

    quiet, verbose = run("quiet"), run("verbose")
    assert quiet.stdout == "done\n" and quiet.stderr == ""
    for seen in ("ExperimentalWarning", "A new study created", "Some regimes for parameter", "advice"):
        assert seen in verbose.stderr, seen
    for bar in ("Loading weights", "GGUF tensors"):
        assert bar in verbose.stderr, bar


def narrow_study(storage: str) -> None:
    study = optuna.create_study(study_name="listed", storage=storage, direction="maximize")
    study.set_metric_names(["consistency/heldout/consistency"])
    params = {
        "epochs": 3,
        "batch_size": 8,
        "lr_multiplier": 1.234567,
        "dropout": 0.0123456,
        "method": "lora",
        "lora_rank": 16,
        "training_args.lr_scheduler_type": "cosine_with_restarts",
    }
    study.enqueue_trial(params, user_attrs={"mlflow_run_id": RUN_ID})
    vs = {"consistency/heldout/consistency": [0.0123, -0.0101, 0.0345]}

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("epochs", 1, 3)
        trial.suggest_categorical("batch_size", [4, 8])
        trial.suggest_float("lr_multiplier", 0.5, 4.0, log=True)
        trial.suggest_float("dropout", 0.0, 0.1)
        trial.suggest_categorical("method", ["lora", "full"])
        trial.suggest_categorical("lora_rank", [8, 16])
        trial.suggest_categorical("training_args.lr_scheduler_type", ["linear", "cosine_with_restarts"])
        trial.set_user_attr("harness.vs_baseline", vs)
        return 0.4123

    study.optimize(objective, n_trials=1)


def test_the_trial_table_fits_80_columns_and_wide_keeps_every_column(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    narrow_study(storage)
    narrow = runner.invoke(app, ["trials", "listed", "--storage", storage], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    *lines, hint = narrow.output.splitlines()
    assert max(len(line) for line in lines) <= 80, narrow.output
    assert "…" not in narrow.output  # nothing cut: one parameter per line, the run id whole on its own
    for shown in ("batch_size=8", "lr_multiplier=1.23", "dropout=0.0123", "lora_rank=16", RUN_ID, "0.4123"):
        assert any(shown in line for line in lines), shown
    assert any("+0.012" in line for line in lines) and any("[-0.010, +0.035]" in line for line in lines)
    assert "consistency/heldout/consistency (maximize)" in " ".join(narrow.output.split())
    assert hint == f"every column on one line: harness trials listed --storage {storage} --wide"  # whole, to copy

    wide = runner.invoke(app, ["trials", "listed", "--storage", storage, "--wide"], env={"COLUMNS": "80"})
    assert wide.exit_code == 0, wide.output
    (row,) = [line for line in wide.output.splitlines() if RUN_ID in line]
    params = "epochs=3, batch_size=8, lr_multiplier=1.23, dropout=0.0123, method=lora, lora_rank=16"
    assert f"{params}, training_args.lr_scheduler_type=cosine_with_restarts" in row
    assert "+0.012 [-0.010, +0.035]" in row and "0.4123" in row


@pytest.mark.slow
def test_a_sweep_and_the_registry_commands_print_only_the_harness(study_yaml: Path, tmp_path: Path) -> None:
    harness = [sys.executable, "-m", "harness.cli"]
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"

    def run(*args: str) -> str:
        done = subprocess.run([*harness, *args], capture_output=True, text=True, env=clean_env(), timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    scored = ["evaluation.scorers=[rouge_l,structure]", "evaluation.heldout_sample_size=2"]
    swept = run("sweep", str(study_yaml), *scored, "evaluation.train_sample_size=1", "evaluation.max_new_tokens=4")
    best = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db").best_trial
    run_id = best.user_attrs["mlflow_run_id"]
    outputs = {
        "sweep": swept,
        "promote": run("promote", "--run", run_id, "--force", "--tracking-uri", uri),
        "generate": run("generate", "models:/tiny@champion", "hi", "--max-new-tokens", "2", "--tracking-uri", uri),
    }
    for command, output in outputs.items():
        assert not FOREIGN.search(output), f"{command}:\n{output}"
    table = [line for line in swept.splitlines() if not line.startswith("every column on one line")]
    assert max(len(line) for line in table) <= 80, swept  # the bar, the trial table, the run
    assert run_id in swept and "study tiny" in swept
    # The same command with --verbose: what was kept out was there to keep out.
    loud = run("--verbose", "generate", "models:/tiny@champion", "hi", "--max-new-tokens", "2", "--tracking-uri", uri)
    assert FOREIGN.search(loud), loud
