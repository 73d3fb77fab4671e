"""Local DPO (training.method: dpo): config, preference data checked before training, real TRL trials
on the tiny Llama whose curves reach MLflow, and a shared base left exactly as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from optuna.trial import FixedTrial

from harness import backends
from harness.backends.local.dpo import DPO, fit_pairs
from harness.config import ConfigError, load_config
from harness.data.chat import DataError
from harness.data.split import load_splits
from harness.search_space import suggest
from tests.conftest import SYSTEM, chat_record, write_jsonl
from tests.data.test_check import dpo_record

REWARDS = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


@pytest.fixture
def pref_files(tmp_path: Path) -> tuple[Path, Path]:
    train = [
        dpo_record(f"How do I reverse list number {i}?", f"Use reversed() ({i}).", "No idea, sorry.") for i in range(8)
    ]
    heldout = [dpo_record(f"What does git stash do, case {i}?", "It shelves changes.", "Dunno.") for i in range(4)]
    return write_jsonl(tmp_path / "pairs.jsonl", train), write_jsonl(tmp_path / "pairs_heldout.jsonl", heldout)


def dpo_config(tmp_path: Path, model: Any, files: tuple[Path, Path], **extra: Any) -> Path:
    """A DPO study on the tiny Llama, every store in tmp_path; ``extra`` replaces top-level keys."""
    config = {
        "study_name": "tiny-dpo",
        "base_model": str(model),
        "system_prompt": SYSTEM,
        "max_seq_length": 128,
        "data": {"train_file": str(files[0]), "validation_file": str(files[1])},
        "training": {"method": "dpo", "eval_steps": 2, "work_dir": str(tmp_path / "work"), "precision": "fp32"},
        "search_space": {"method": ["lora", "full"], "epochs": 1, "batch_size": 2, "beta": 0.1, "dropout": 0.0},
        "sampler": {"type": "grid"},
        "pruner": {"type": "none"},
        "n_trials": 2,
        "evaluation": {"enabled": False},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db", "register_best": False},
        "storage": f"sqlite:///{tmp_path}/mlruns/optuna.db",
        **extra,
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_beta_is_sampled_on_local_dpo_studies_and_refused_on_sft_ones(tmp_path: Path, pref_files) -> None:
    config = load_config(
        dpo_config(tmp_path, "smollm2", pref_files, search_space={"method": "lora", "beta": [0.1, 0.5]})
    )
    params = suggest(FixedTrial({"beta": 0.5}), config.search_space, config.backend)
    assert params.beta == 0.5 and params.is_lora
    assert "eval_rewards/accuracies" in config.produced_metrics()
    sft = {"training": {"method": "sft"}, "search_space": {"beta": 0.1}}
    with pytest.raises(ConfigError, match=r"search_space\.beta: only used with training\.method dpo"):
        load_config(dpo_config(tmp_path, "smollm2", pref_files, **sft))
    augmented = {"search_space": {"beta": 0.1, "augmentation": ["none", "eda"]}}
    with pytest.raises(ConfigError, match=r"search_space\.augmentation: eda not available with training\.method dpo"):
        load_config(dpo_config(tmp_path, "smollm2", pref_files, **augmented))
    # An SFT study samples no beta even where the space is built by hand.
    sft_config = load_config(dpo_config(tmp_path, "smollm2", pref_files, training={"method": "sft"}, search_space={}))
    assert suggest(FixedTrial({}), sft_config.search_space, "local").beta is None


def test_a_config_read_back_from_its_run_validates_again(tmp_path: Path, pref_files) -> None:
    from harness.config import parse_study

    for training in ({"method": "sft"}, {"method": "dpo"}):
        config = load_config(dpo_config(tmp_path, "smollm2", pref_files, training=training, search_space={}))
        assert parse_study(config.model_dump(mode="json")) == config  # beta: None is no beta


def test_evaluation_of_a_dpo_study_compares_with_the_preferred_output(tmp_path: Path, pref_files) -> None:
    config = load_config(dpo_config(tmp_path, "smollm2", pref_files))
    train, heldout = load_splits(config.data, config.system_prompt)
    assert (len(train), len(heldout)) == (8, 4)
    assert heldout[0].reference == "It shelves changes."
    assert heldout[0].prompt[0] == {"role": "system", "content": SYSTEM}
    assert heldout[0].source == f"{pref_files[1]}:1"


def test_preference_data_errors_name_file_and_line_before_training(tmp_path: Path, pref_files, tiny_llama_dir) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [dpo_record("q1"), dpo_record("q2", good="same", bad="same")])
    with pytest.raises(DataError, match=f"{bad}:2: preferred_output and non_preferred_output are identical"):
        backends.create(load_config(dpo_config(tmp_path, tiny_llama_dir, (bad, pref_files[1])))).prepare()
    chat = write_jsonl(tmp_path / "chat.jsonl", [chat_record("q", "a")])
    with pytest.raises(DataError, match=f"{chat}: chat JSONL, but a DPO study trains on preference JSONL"):
        backends.create(load_config(dpo_config(tmp_path, tiny_llama_dir, (chat, pref_files[1])))).prepare()
    sft = load_config(dpo_config(tmp_path, tiny_llama_dir, pref_files, training={"method": "sft"}, search_space={}))
    with pytest.raises(DataError, match=r"preference \(DPO\) JSONL, but training\.method is sft"):
        backends.create(sft).prepare()
    long = write_jsonl(tmp_path / "long.jsonl", [dpo_record("q1"), dpo_record("q2", bad="blah " * 200)])
    with pytest.raises(DataError, match=f"{long}:2: .* exceeds max_seq_length 128"):
        backends.create(load_config(dpo_config(tmp_path, tiny_llama_dir, (long, pref_files[1])))).prepare()


def test_too_long_pairs_are_dropped_or_left_for_trl_to_cut(smol_tokenizer) -> None:
    pairs = [("f:1", dpo_record("q1")), ("f:2", dpo_record("q2", bad="blah " * 200))]
    kept, dropped = fit_pairs(smol_tokenizer, pairs, 128, "drop")
    assert [p.source for p in kept] == ["f:1"] and dropped[0].startswith("f:2: ")
    kept, _ = fit_pairs(smol_tokenizer, pairs, 128, "truncate")
    assert [p.source for p in kept] == ["f:1", "f:2"]
    pair = kept[0]
    assert pair.row["chosen"] == [{"role": "assistant", "content": "Use reversed()."}]
    assert pair.completion_tokens == sum(pair.lengths) - 2 * pair.prompt_tokens > 0


@pytest.mark.slow
def test_lora_and_full_dpo_trials_log_rewards_and_leave_the_base_untouched(
    tmp_path: Path, pref_files, tiny_llama_dir
) -> None:
    from mlflow.tracking import MlflowClient

    from harness import models
    from harness.study import run_sweep

    config = load_config(dpo_config(tmp_path, tiny_llama_dir, pref_files))
    assert isinstance(backends.create(config).objective, DPO)
    base = models.load_base(config.base_model)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    result = run_sweep(config)
    assert [t.state.name for t in result.study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient(config.mlflow.tracking_uri)
    runs = [client.get_run(t.user_attrs["mlflow_run_id"]) for t in result.study.trials]
    assert sorted(r.data.params["method"] for r in runs) == ["full", "lora"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.params["beta"] == "0.1" and run.data.params["training_method"] == "dpo"
        for name in ("train_loss", "eval_loss", *REWARDS, *(f"eval_{m}" for m in REWARDS)):
            assert client.get_metric_history(run.info.run_id, name), name
        assert len(client.get_metric_history(run.info.run_id, "rewards/accuracies")) == 4  # one per step
        assert 0.0 <= run.data.metrics["eval_rewards/accuracies"] <= 1.0
        assert (Path(run.data.tags["harness.model_dir"]) / "config.json").exists() == (
            run.data.params["method"] == "full"
        )
    after = base.state_dict()
    assert all((before[k] == after[k]).all() for k in before)  # bit-identical after the LoRA and the full trial
    assert not any("lora" in name for name, _ in base.named_modules())
    assert "forward" not in vars(base)  # TRL's fused LM head patch is gone too
