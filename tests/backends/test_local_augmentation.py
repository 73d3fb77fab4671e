"""A local study searching search_space.augmentation: each trial trains on its method's set, the
augmented set is built once, the held-out set is never augmented, and MLflow says which was used."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness.config import ConfigError, load_config
from harness.data.chat import load_jsonl
from harness.study import run_sweep
from harness.synthesis import augment as augment_module

OVERRIDES = [
    "evaluation.enabled=false",
    "mlflow.register_best=false",
    "search_space.method=lora",
    "search_space.lr_multiplier=1.0",
    "search_space.dropout=0.0",
    "search_space.batch_size=[2, 4]",
    "search_space.augmentation=[none, eda]",
    "sampler.type=grid",
    "n_trials=4",
    "data.augment.factor=1",
    "data.augment.seed=3",
]


def test_a_study_over_augmentation_builds_each_set_once_and_logs_it_per_trial(
    study_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    built: list[str] = []
    real = augment_module.augment
    monkeypatch.setattr(augment_module, "augment", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    config = load_config(study_yaml, OVERRIDES)
    run_sweep(config)

    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert sorted(t.params["augmentation"] for t in study.trials) == ["eda", "eda", "none", "none"]
    assert built == ["eda"]  # two eda trials, one augmented set
    (cached,) = (tmp_path / "cache" / "augment").glob("eda-*.jsonl")
    client = MlflowClient(config.mlflow.tracking_uri)
    for trial in study.trials:
        params = client.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        assert params["augmentation"] == trial.params["augmentation"]
        if params["augmentation"] == "eda":
            assert params["augmentation_cache"] == cached.stem and params["n_train_augmented"] == "24"
        else:
            assert "augmentation_cache" not in params
    # Originals first, then copies of training examples only: no held-out question was augmented.
    augmented = load_jsonl(cached)
    train = load_jsonl(config.data.train_file)
    heldout = {e.messages[1]["content"] for e in load_jsonl(config.data.validation_file)}
    assert len(augmented) == 2 * len(train)
    assert [e.messages[1:] for e in augmented[: len(train)]] == [e.messages[1:] for e in train]
    assert not heldout & {e.messages[1]["content"] for e in augmented}


def test_a_rewrite_without_llama_cpp_fails_the_sweep_before_any_run(
    study_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as after `pip install -e .`
    config = load_config(study_yaml, [*OVERRIDES, "search_space.augmentation=[none, paraphrase]"])
    with pytest.raises(ConfigError, match=r"^data\.augment\.endpoint: .*pip install"):
        run_sweep(config)
    assert config.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # no MLflow store, so no run, was made
