"""An objective that reads a judge nobody checked runs only when trusted, and its runs say so."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.config import load_config
from harness.study import run_sweep
from tests.evaluation.fake_judges import random_judge
from tests.evaluation.fake_server import FakeState, fake_server

pytestmark = pytest.mark.slow


def test_a_trusted_unchecked_judge_tags_the_parent_and_every_trial(study_yaml: Path, tmp_path: Path) -> None:
    with fake_server(FakeState(reply=random_judge)) as url:
        config = load_config(
            study_yaml,
            [
                "evaluation.scorers=[rouge_l,judge]",
                "evaluation.judge.kind=base_url",
                f"evaluation.judge.base_url={url}",
                "evaluation.judge.model=fake",
                "evaluation.judge.max_retries=0",
                f"evaluation.judge.cache_path={tmp_path}/judge.sqlite",
                "evaluation.judge.check=false",
                "evaluation.judge.trust_unchecked=true",
                "evaluation.heldout_sample_size=2",
                "evaluation.max_new_tokens=8",
                "objective.metric=consistency/heldout/judge",
                "objective.direction=maximize",
                "n_trials=1",
                "search_space.method=lora",
            ],
        )
        result = run_sweep(config)

    client = MlflowClient(config.mlflow.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["harness.judge_unchecked"] == "true"
    assert "harness.judge_check_accuracy" not in parent.data.tags  # no check ran
    experiment = client.get_experiment_by_name(config.study_name)
    (trial,) = client.search_runs([experiment.experiment_id], "tags.`harness.trial_number` = '0'")
    assert trial.data.tags["harness.judge_unchecked"] == "true"
    assert "consistency/heldout/judge" in trial.data.metrics
