"""The shipped knowledge-injection example: its config loads and its data passes ``harness data check``,
every row checked and grouped, each fact's wordings split 7/3 with no held-out wording trained."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_config
from harness.data.chat import load_jsonl
from harness.settings.search import Range

CONFIG = Path("experiments/knowledge_injection.yaml")


def test_the_config_searches_the_seed_rounds_on_task_accuracy() -> None:
    config = load_config(CONFIG)
    assert config.objective.metric == "task/heldout/accuracy" and config.objective.direction == "maximize"
    assert config.evaluation.during_training.enabled and config.training.keep == "best"
    assert config.evaluation.stability is not None
    space = config.search_space
    assert set(space.choices("method")) == {"lora", "full"}
    assert isinstance(space.lr_multiplier, Range) and space.lr_multiplier.high / space.lr_multiplier.low >= 10
    assert isinstance(space.epochs, Range) and len(space.choices("dropout")) > 1


def test_the_shipped_data_passes_data_check_with_checks_and_groups_on_every_row() -> None:
    config = load_config(CONFIG)
    train_file, heldout_file = config.data.train_file, config.data.validation_file
    assert heldout_file is not None
    result = CliRunner().invoke(app, ["data", "check", str(train_file), str(heldout_file), "--config", str(CONFIG)])
    assert result.exit_code == 0, result.output
    assert "appears only" not in result.output
    train, heldout = load_jsonl(train_file), load_jsonl(heldout_file)
    assert all(e.checks and e.group for e in [*train, *heldout])
    per_train, per_heldout = Counter(e.group for e in train), Counter(e.group for e in heldout)
    assert per_train.keys() == per_heldout.keys() and len(per_train) >= 20
    assert all(
        per_train[g] + per_heldout[g] >= 10 and per_heldout[g] * 10 == (per_train[g] + per_heldout[g]) * 3
        for g in per_train
    )
    prompts = {e.messages[-2]["content"] for e in train}
    assert not prompts & {e.messages[-2]["content"] for e in heldout}  # held-out wordings are unseen
