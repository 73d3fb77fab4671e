"""Does a study finish faster with two workers, and does it lose or repeat anything?

Runs the same small study (a randomly initialised Llama built here, the shipped programmer data,
LoRA and full trials, no evaluation) twice against PostgreSQL: once with ``harness sweep
--workers 1`` and once with ``--workers 2``, each in a fresh database and MLflow store, timed end
to end (process start included). Then reads both studies back. The last line reads

    speedup_2_workers=X lost_trials=L duplicate_numbers=D

``lost_trials``: trials short of n_trials COMPLETE, or a trial without a FINISHED MLflow run;
``duplicate_numbers``: trial numbers that own more than one MLflow trial run. On a 2-core machine
the workers share the cores (one thread each), so about 1.8 is the ceiling when one worker leaves
cores idle; ``cores_busy`` (CPU seconds per wall second, every process) shows whether it does.
Usage: ``python bench/workers.py [--trials 8] [--epochs 3] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "experiments" / "data"


def tiny_model(directory: Path) -> Path:
    """A 2-layer Llama with the packaged SmolLM2 tokenizer: seconds per trial, real training."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@contextmanager
def database(server: str) -> Iterator[str]:
    """A new PostgreSQL database for one run, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server)
    name = f"harness_bench_{uuid.uuid4().hex[:10]}"
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def study_config(tmp: Path, model: Path, storage: str, trials: int, epochs: int) -> Path:
    config = {
        "study_name": "workers-bench",
        "base_model": str(model),
        "max_seq_length": 512,
        "data": {
            "train_file": str(DATA / "programmer_train.jsonl"),
            "validation_file": str(DATA / "programmer_heldout.jsonl"),
        },
        "search_space": {
            "epochs": epochs,
            "batch_size": [4, 8],
            "lr_multiplier": {"low": 0.5, "high": 2.0, "log": True},
            "method": ["lora", "full"],
        },
        "training": {"eval_steps": 50, "work_dir": str(tmp / "work"), "precision": "fp32", "save_strategy": "no"},
        "evaluation": {"enabled": False},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "n_trials": trials,
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "register_best": False},
        "storage": storage,
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(workers: int, model: Path, server: str, trials: int, epochs: int) -> dict[str, Any]:
    """One timed sweep with ``workers`` workers; what it left behind, read back."""
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    with tempfile.TemporaryDirectory() as tmp_dir, database(server) as storage:
        tmp = Path(tmp_dir)
        config = study_config(tmp, model, storage, trials, epochs)
        command = [sys.executable, "-m", "harness.cli", "sweep", str(config), "--workers", str(workers)]
        started, cpu_before = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        if done.returncode != 0:
            raise SystemExit(f"{workers} worker(s) failed:\n{done.stderr[-3000:]}")
        study = optuna.load_study(study_name="workers-bench", storage=storage)
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        experiment = client.get_experiment_by_name("workers-bench")
        runs = [r for r in client.search_runs([experiment.experiment_id]) if "harness.trial_number" in r.data.tags]
        numbers = collections.Counter(r.data.tags["harness.trial_number"] for r in runs)
        finished = {r.data.tags["harness.trial_number"] for r in runs if r.info.status == "FINISHED"}
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        return {
            "workers": workers,
            "seconds": round(seconds, 1),
            "cores_busy": round(cpu / seconds, 2),  # user + system CPU seconds per wall second
            "complete": len(complete),
            "lost": max(0, trials - len(complete)) + sum(str(t.number) not in finished for t in complete),
            "duplicates": sum(1 for count in numbers.values() if count > 1),
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="per trial: more epochs, less overhead per trial")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HARNESS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as model_dir:
        model = tiny_model(Path(model_dir))
        results = [run(n, model, args.postgres, args.trials, args.epochs) for n in (1, 2)]
    for result in results:
        print(json.dumps(result))
    one, two = results
    lost = one["lost"] + two["lost"]
    duplicates = one["duplicates"] + two["duplicates"]
    print(f"speedup_2_workers={one['seconds'] / two['seconds']:.2f} lost_trials={lost} duplicate_numbers={duplicates}")


if __name__ == "__main__":
    main()
