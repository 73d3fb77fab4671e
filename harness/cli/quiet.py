"""Other libraries' warnings, logs and progress bars, silenced in one place at CLI start.

A user of ``harness`` can act on the harness's own progress, tables and errors; not on Optuna
calling its own heartbeat API experimental, on a bar per tensor while a model loads, or on MLflow
asking for type hints the harness leaves out on purpose. ``harness --verbose CMD`` keeps them all.
Every filter names a category and a library (or the exact message); nothing is ignored wholesale.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Read by the libraries when they are imported, which the commands do lazily, after this runs.
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    # transformers' "Loading weights" / "Writing model shards" and the hub's download bars.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # Every tqdm bar is another library's (the harness draws its own with rich): transformers'
    # GGUF dequantisation uses tqdm.auto directly, past the switch above. Read when tqdm is imported.
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Optuna's importance evaluator (PED-ANOVA, behind plot_param_importances) on a few trials.
PED_ANOVA = (
    r"(Target and region quantiles select the same set of trials"
    r"|The number of trials is too small to compute importances"
    r"|Some regimes for parameter)"
)
QUIET_LOGGERS = {"mlflow.pyfunc": logging.ERROR, "mlflow.store.db.utils": logging.WARNING}

_verbose = False


def configure(verbose: bool) -> None:
    """Called once per command, before any heavy library is imported."""
    global _verbose
    _verbose = verbose
    # Not about noise: the packaged models are on disk, and tokenizers would warn after a fork.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # mlflow.genai.evaluate (the GenAI mirror) reports usage to MLflow's servers: not a study's business.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    _filter_warnings()
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    _quiet_optuna()
    _quiet_loaded_libraries()


def verbose() -> bool:
    """Whether this command was started with --verbose (worker processes are started alike)."""
    return _verbose


def _filter_warnings() -> None:
    # Deprecations inside transformers/peft/TRL (renamed kwargs they pass each other) are theirs to
    # fix, and one per forward call would bury the progress bars.
    for library in ("transformers", "torch", "peft", "trl"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{library}\.")
    # MLflow's advice on signatures, pickling and input examples is about choices made on purpose
    # (harness.lifecycle.serving).
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
    # By message, not module: from Python 3.12 Optuna attributes its warnings to the caller.
    warnings.filterwarnings("ignore", message=PED_ANOVA, category=UserWarning)


def _quiet_optuna() -> None:
    import optuna

    # Heartbeats, RetryHeartbeatStaleTrialCallback, set_metric_names: public, documented and used
    # on purpose, experimental in name since Optuna 2.8.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # "[I ...] Trial 3 finished with value ...": the harness's progress bar and table say it.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _quiet_loaded_libraries() -> None:
    """Libraries imported before this ran (a test calling the app in-process) missed QUIET_ENV."""
    if "transformers" in sys.modules:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
