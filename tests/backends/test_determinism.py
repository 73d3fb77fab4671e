"""Deterministic trials: one config, params and seed train the same weights and score the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from harness.backends.local.packed_attention import fp32_max_tokens
from harness.config import load_config
from harness.device import cpu_flags
from harness.study import run_sweep
from harness.tracking import TAG_MODEL_DIR

pytestmark = pytest.mark.slow

# One trial in bf16 (packed rows, per-example attention) scored on its held-out answers.
OVERRIDES = [
    "n_trials=1",
    "training.precision=bf16",
    "evaluation.scorers=[embedding,rouge_l,structure,detail]",
    "evaluation.train_sample_size=0",
    "evaluation.heldout_sample_size=2",
    "evaluation.max_new_tokens=12",
    "evaluation.baseline=false",
]
NUMERICS = {
    "attention_precision",
    "attention_fp32_max_tokens",
    "torch_threads",
    "torch_version",
    "transformers_version",
    "peft_version",
    "training_seed",
    "train_sampling",
    "train_data_digest",
    "bf16",
}
# Wall-clock figures: the only metrics allowed to differ between two runs of one trial.
TIMINGS = ("per_second", "runtime", "seconds", "duration", "_time")


def _trial(
    study_yaml: Path, method: str, name: str, *extra: str
) -> tuple[dict[str, torch.Tensor], dict[str, float], dict]:
    config = load_config(study_yaml, [*OVERRIDES, f"search_space.method=[{method}]", f"study_name={name}", *extra])
    run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name(name).experiment_id], "attributes.run_name = 'trial-0'")
    assert run.info.status == "FINISHED"
    weights = "adapter_model" if method == "lora" else "model"
    adapter = load_file(Path(run.data.tags[TAG_MODEL_DIR]) / f"{weights}.safetensors")
    scores = {k: v for k, v in run.data.metrics.items() if not any(t in k for t in TIMINGS)}
    return adapter, scores, run.data.params


@pytest.mark.parametrize("method", ["lora", "full"])
def test_one_trial_trained_twice_gives_identical_weights_and_scores(study_yaml: Path, method: str) -> None:
    first, first_scores, params = _trial(study_yaml, method, "once")
    torch.rand(1000)  # whatever this process drew in between (another trial, a baseline) changes nothing
    # Another process keeps a core busy: what used to change which precision attention ran in.
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        second, second_scores, again = _trial(study_yaml, method, "twice")
    finally:
        load.kill()
        load.wait()

    assert first.keys() == second.keys() and first
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert "consistency/heldout/consistency" in first_scores and "eval_loss" in first_scores
    assert first_scores == second_scores
    assert set(params) >= NUMERICS
    assert {k: params[k] for k in NUMERICS} == {k: again[k] for k in NUMERICS}
    assert params["training_seed"] == "0" and params["attention_precision"] == "auto"
    assert params["torch_version"] == torch.__version__

    # The comparison tells runs apart: another seed, or attention in the other precision (what a
    # timing under load used to flip), train other weights.
    rule = fp32_max_tokens("auto", "cpu", cpu_flags())
    assert params["attention_fp32_max_tokens"] == ("all" if rule is None else str(rule))  # packed rows here
    flipped = "fp32" if rule == 0 else "autocast"
    for name, change in (("reseeded", "training.seed=1"), ("flipped", f"training.attention_precision={flipped}")):
        other, other_scores, _ = _trial(study_yaml, method, name, change)
        assert not all(torch.equal(first[k], other[k]) for k in first), change
        assert other_scores["eval_loss"] != first_scores["eval_loss"], change
