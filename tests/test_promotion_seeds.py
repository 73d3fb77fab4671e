"""Promotion on confirmed evidence: a candidate whose configuration was trained with several seeds
is judged over all its runs, and the verdict says how many training runs the interval covers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from harness.lifecycle import registry
from tests.test_registry import HELDOUT_ROUGE, make_baseline_run, registry_config, trial_with_table

PROMPTS = 40


def test_a_gain_one_run_shows_but_its_seeds_do_not_is_refused(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml, *HELDOUT_ROUGE)
    client = MlflowClient(config.mlflow.tracking_uri)
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.6, PROMPTS)
    make_baseline_run(config, {}, rows=base.tolist())
    lucky = trial_with_table(config, 0, (base + 0.08 + rng.normal(0, 0.02, PROMPTS)).tolist(), tiny_llama_dir)
    single = registry.promote(config, lucky, dry_run=True)  # before its repeats exist: one run
    assert single.promoted and single.interval.low > 0 and single.interval.n_seeds == 1
    assert "better is +; one training run: the interval ignores training noise)" in single.reason

    # Its configuration trained again with seeds +1 and +2: the first run's gain was luck.
    for number, k, shift in ((1, 1, -0.03), (2, 2, 0.0)):
        repeat = trial_with_table(
            config, number, (base + shift + rng.normal(0, 0.02, PROMPTS)).tolist(), tiny_llama_dir
        )
        client.set_tag(repeat, "harness.repeat_of", "0")
        client.set_tag(repeat, "harness.repeat", str(k))
    refused = registry.promote(config, lucky)
    assert not refused.promoted and refused.interval.n_seeds == 3
    assert refused.interval.low <= 0 < refused.interval.high  # the same prompts, three training runs
    assert refused.reason.startswith("does not beat the baseline: consistency/heldout/rouge_l +0.0")
    assert "x 3 training seeds (seed sd 0.0" in refused.reason and "inside the noise" in refused.reason
    assert client.search_model_versions("name = 'tiny'") == []

    # A configuration whose every seed gains is promoted on that evidence, and the version says so.
    steady = trial_with_table(config, 3, (base + 0.1 + rng.normal(0, 0.02, PROMPTS)).tolist(), tiny_llama_dir)
    for number, k in ((4, 1), (5, 2)):
        repeat = trial_with_table(config, number, (base + 0.1 + rng.normal(0, 0.02, PROMPTS)).tolist(), tiny_llama_dir)
        client.set_tag(repeat, "harness.repeat_of", "3")
        client.set_tag(repeat, "harness.repeat", str(k))
    promoted = registry.promote(config, steady)
    assert promoted.promoted and promoted.interval.n_seeds == 3 and promoted.interval.low > 0.05
    assert "x 3 training seeds" in promoted.reason
    tags = client.get_model_version("tiny", promoted.candidate_version).tags
    assert tags["harness.promotion_seeds"] == "3" and "x 3 training seeds" in tags["harness.promotion"]
    evidence = json.loads(tags["harness.promotion_interval"])
    assert evidence["n_seeds"] == 3 and evidence["low"] == promoted.interval.low and evidence["seed_sd"] > 0
