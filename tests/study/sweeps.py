"""Helpers for sweeps without training: a backend that finishes at once, and a foreign worker
process (plain Optuna, as a harness worker looks in the study) that takes a trial and hangs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.backends.protocol import TrainResult, TrialContext
from harness.config import StudyConfig, parse_study
from harness.search_space import TrialParams
from harness.study import loop


class InstantBackend:
    """Trains nothing; ``on_train`` runs inside each trial (to kill another worker, say)."""

    def __init__(self, on_train: Callable[[], None] = lambda: None) -> None:
        self.on_train = on_train

    def prepare(self) -> dict[str, Any]:
        return {}

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        self.on_train()
        return TrainResult(metrics={"eval_loss": 0.5}, params={})

    def token_counter(self) -> None:
        return None

    def base_answerer(self) -> None:
        return None

    def baseline_metrics(self) -> dict[str, float]:
        return {}


class SeededBackend(InstantBackend):
    """Trains nothing, but as training would, its eval loss depends on the parameters and on the
    training seed (``ctx.repeat`` offsets it); it reports one intermediate loss, and logs the offset."""

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        self.on_train()
        ctx.report(1.0, 1)
        loss = abs(float(params.lr_multiplier) - 1.0) + 0.01 * ctx.repeat
        return TrainResult(metrics={"eval_loss": loss, "seed_offset": float(ctx.repeat)}, params={})


def sweep_config(tmp_path: Path, storage: str, **settings: Any) -> StudyConfig:
    """A two-trial study with fast heartbeats, evaluation and registration off."""
    return parse_study(sweep_settings(tmp_path, storage, **settings))


def sweep_settings(tmp_path: Path, storage: str, **settings: Any) -> dict[str, Any]:
    """:func:`sweep_config`'s study as plain data (what a YAML config file holds)."""
    return {
        "study_name": "s",
        "data": {"train_file": "x.jsonl"},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db", "register_best": False},
        "storage": storage,
        "n_trials": 2,
        "evaluation": {"enabled": False},
        "workers": {"heartbeat_interval_s": 1, "grace_period_s": 4},
        **settings,
    }


def use_backend(monkeypatch: pytest.MonkeyPatch, backend: InstantBackend) -> None:
    monkeypatch.setattr(loop.backends, "create", lambda config: backend)


TAKE_A_TRIAL = """
import sys, time
import optuna
from harness.storage import make_storage, HeartbeatOptions
heartbeat = HeartbeatOptions(1, 4) if sys.argv[3] == "heartbeat" else None
study = optuna.load_study(study_name="s", storage=make_storage(sys.argv[1], heartbeat))

def objective(trial):
    trial.suggest_int("epochs", 1, 3)
    trial.set_user_attr("mlflow_run_id", sys.argv[2])
    print("running", flush=True)
    time.sleep(600)  # training, until killed

study.optimize(objective, n_trials=1)
"""


def start_foreign_worker(storage: str, run_id: str, heartbeat: bool) -> subprocess.Popen[str]:
    """A worker mid-trial on ``storage`` (trial 0 of a new study), with an MLflow run ``run_id``."""
    mode = "heartbeat" if heartbeat else "none"
    worker = subprocess.Popen(
        [sys.executable, "-c", TAKE_A_TRIAL, storage, run_id, mode], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "running"
    return worker


CONFIRM_WORKER = """
import json, sys, time
from harness.config import parse_study
from harness.study import loop
from tests.study.sweeps import SeededBackend

config = parse_study(json.loads(sys.argv[1]))
loop.backends.create = lambda config: SeededBackend(on_train=lambda: time.sleep(0.3))
print(loop.run_sweep(config).outcome.kind, flush=True)
"""


def start_seeded_worker(config: StudyConfig) -> subprocess.Popen[str]:
    """A worker process running ``config``'s sweep with SeededBackend (each trial takes 0.3 s)."""
    root = Path(__file__).resolve().parents[2]
    payload = config.model_dump_json()
    return subprocess.Popen(
        [sys.executable, "-c", CONFIRM_WORKER, payload], cwd=root, stdout=subprocess.PIPE, text=True
    )
