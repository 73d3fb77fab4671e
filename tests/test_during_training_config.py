"""evaluation.during_training, training.keep and the pruners: what loads, and each refusal's message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import ConfigError, load_config, parse_study
from harness.evaluation.checkpoint_scores import scorers_for
from harness.settings.evaluation import EvaluationConfig

HELDOUT = "consistency/heldout/consistency"
BASE: dict[str, Any] = {
    "study_name": "s",
    "data": {"train_file": "train.jsonl", "validation_split": 0.3},
    "objective": {"metric": HELDOUT, "direction": "maximize"},
}


def study(**settings: Any) -> Any:
    return parse_study({**BASE, **settings})


def refused(tmp_path: Path, *overrides: str, data: dict[str, Any] | None = None) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data or BASE))
    with pytest.raises(ConfigError) as error:
        load_config(path, list(overrides))
    return str(error.value)


def test_on_in_every_shipped_example_that_trains_more_than_one_epoch() -> None:
    for path in sorted(Path("experiments").rglob("*.yaml")):
        config = load_config(path)
        epochs = config.search_space.choices("epochs") or [config.search_space.epochs.high]
        if config.backend == "local" and max(epochs) > 1:
            assert config.evaluation.during_training.enabled, path
            assert config.keep == "best", path


def test_keep_defaults_to_best_when_measured_during_training() -> None:
    assert study().keep == "last"
    on = study(evaluation={"during_training": True})
    assert on.evaluation.during_training.enabled and on.keep == "best"
    assert study(evaluation={"during_training": {"enabled": True}}, training={"keep": "last"}).keep == "last"
    assert HELDOUT in on.checkpoint_metrics() and "eval_loss" in on.checkpoint_metrics()
    assert not any("train/" in n or "_vs_baseline" in n for n in on.checkpoint_metrics())


def test_each_refusal_names_its_key(tmp_path: Path) -> None:
    on = "evaluation.during_training=true"
    assert "training.keep: best" in refused(tmp_path, "training.keep=best")
    message = refused(tmp_path, on, "objective.metric=consistency/train/consistency")
    assert "evaluation.during_training: the objective reads consistency/train/consistency" in message
    sized = ("evaluation.during_training.enabled=true", "evaluation.during_training.heldout_size=6")
    message = refused(tmp_path, *sized, "evaluation.heldout_sample_size=5")
    assert "heldout_size: 6 prompts" in message
    multi = {**BASE, "objective": {"metrics": [{"metric": "eval_loss"}, {"metric": HELDOUT}]}}
    assert "multi-objective" in refused(tmp_path, on, data=multi)
    assert "training.method dpo" in refused(tmp_path, on, "training.method=dpo", "objective.metric=eval_loss")
    remote = {
        **BASE,
        "backend": "openai",
        "objective": {"metric": "eval_loss"},
        "search_space": {"method": "supervised"},
    }
    assert "OpenAI backends" in refused(tmp_path, on, data=remote)


def test_the_wilcoxon_pruner_needs_per_prompt_scores_at_checkpoints(tmp_path: Path) -> None:
    wilcoxon = "pruner.type=wilcoxon"
    assert "during_training off" in refused(tmp_path, wilcoxon)
    on = "evaluation.during_training=true"
    assert "objective ['eval_loss']" in refused(tmp_path, wilcoxon, on, "objective.metric=eval_loss")
    assert "one held-out" in refused(tmp_path, wilcoxon, on, f"objective.metric={HELDOUT}_vs_baseline")
    config = study(evaluation={"during_training": True}, pruner={"type": "wilcoxon", "p_threshold": 0.05})
    assert config.pruner.p_threshold == 0.05 and config.pruner.n_startup_steps == 2


def test_checkpoints_run_only_the_scorers_the_objective_reads() -> None:
    settings = EvaluationConfig(scorers=("embedding", "rouge_l", "structure", "detail", "judge"))
    assert scorers_for([HELDOUT], settings) == ("embedding", "rouge_l", "structure", "detail")
    assert scorers_for(["consistency/heldout/rouge_l", "eval_loss"], settings) == ("rouge_l",)
    assert scorers_for(["consistency/heldout/judge_structure"], settings) == ("judge",)
    assert scorers_for(["eval_loss"], settings) == ()


def test_a_pruner_on_a_multi_objective_study_is_refused(tmp_path: Path) -> None:
    """Optuna refuses intermediate values in a multi-objective study: a pruner there would never act."""
    multi = {**BASE, "objective": {"metrics": [{"metric": "eval_loss"}, {"metric": HELDOUT, "direction": "maximize"}]}}
    message = refused(tmp_path, "pruner.type=median", data=multi)
    assert "pruner.type: median on a multi-objective study (eval_loss, consistency/heldout/consistency)" in message
    assert "set pruner.type: none" in message
    assert parse_study(multi).pruner.type is None  # left out: no pruning, as before
    assert parse_study({**multi, "pruner": {"type": "none"}}).pruner.type == "none"
    assert study().pruner.type is None  # one objective: the median pruner (harness.study.pruning)
