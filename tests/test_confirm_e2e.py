"""Confirmation on the tiny model: the best configuration trains again with further seeds, and its
interval against the baseline covers seeds and prompts on the parent run and in promotion."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.lifecycle import registry
from harness.storage import ATTR_CONFIRMED, ATTR_RUN_ID, repeat_of
from harness.study import run_sweep

pytestmark = pytest.mark.slow
METRIC = "consistency/heldout/consistency"
CONFIRMED = [
    "evaluation.scorers=[rouge_l,structure,detail]",
    "evaluation.train_sample_size=1",
    "evaluation.heldout_sample_size=4",
    "evaluation.max_new_tokens=8",
    f"objective.metric={METRIC}",
    "objective.direction=maximize",
    "n_trials=1",
    "search_space.method=lora",
    "search_space.batch_size=4",
    "confirm={top_k: 1, seeds: 2}",
    "training.seed=5",
]


def test_a_confirmed_sweep_reports_and_promotes_over_seeds_and_prompts(study_yaml: Path) -> None:
    config = load_config(study_yaml, CONFIRMED)
    result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    trials = result.study.get_trials()
    assert [repeat_of(t) for t in trials] == [None, 0, 0]
    seeds = [client.get_run(t.user_attrs[ATTR_RUN_ID]).data.params["training_seed"] for t in trials]
    assert seeds == ["5", "6", "7"]  # training.seed + k

    (row,) = result.study.user_attrs[ATTR_CONFIRMED]
    assert row["best"] and row["runs"] == 3 and row["trials"] == [0, 1, 2] and row["prompts"] == 4
    mean, low, high = row["vs_baseline"]
    assert low <= mean <= high
    parent = client.get_run(result.parent_run_id).data.metrics
    assert parent["best/seeds"] == 3.0
    assert (parent[f"best/{METRIC}_vs_baseline_ci_low"], parent[f"best/{METRIC}_vs_baseline_ci_high"]) == (low, high)
    gains = [client.get_run(t.user_attrs[ATTR_RUN_ID]).data.metrics[f"{METRIC}_vs_baseline"] for t in trials]
    assert mean == pytest.approx(sum(gains) / 3)  # one baseline, the same four prompts for every seed

    promotion = registry.promote(config, dry_run=True)  # the study's best: its confirmed configuration
    assert promotion.candidate_run_id == trials[0].user_attrs[ATTR_RUN_ID]
    assert promotion.interval.n_seeds == 3 and promotion.interval.mean == pytest.approx(mean)
    assert "x 3 training seeds" in promotion.reason
