from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, Range, load_config

BASE = {"study_name": "s", "data": {"train_file": "train.jsonl", "validation_split": 0.3}}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_quickstart_config_loads() -> None:
    config = load_config(Path("experiments/quickstart.yaml"))
    assert config.study_name == "quickstart"
    assert config.search_space.method == ["lora", "full"]
    assert isinstance(config.search_space.lr_multiplier, Range)
    assert config.search_space.lr_multiplier.log


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "search_space": {"epochs": 2, "epohcs": 3}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "search_space.epohcs: unknown key" in str(error.value)
    assert str(path) in str(error.value)


def test_bad_range_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "search_space": {"dropout": {"low": 0.5, "high": 0.1}}})
    with pytest.raises(ConfigError, match=r"search_space\.dropout"):
        load_config(path)


def test_overrides_are_revalidated(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    config = load_config(path, ["n_trials=7", "search_space.batch_size=[1, 12]", "mlflow.tracking_uri=sqlite:///x.db"])
    assert config.n_trials == 7
    assert config.search_space.batch_size == [1, 12]
    assert config.mlflow.tracking_uri == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="n_trials"):
        load_config(path, ["n_trials=0"])
    with pytest.raises(ConfigError, match=r"search_space\.nope: unknown key"):
        load_config(path, ["search_space.nope=1"])


def test_validation_file_and_split_are_exclusive(tmp_path: Path) -> None:
    data = {**BASE, "data": {"train_file": "a", "validation_file": "b", "validation_split": 0.3}}
    with pytest.raises(ConfigError, match="not both"):
        load_config(write(tmp_path, data))


def test_unknown_method_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method"):
        load_config(write(tmp_path, {**BASE, "search_space": {"method": ["lora", "qlora"]}}))


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(ValueError):
        config.study_name = "other"  # type: ignore[misc]


def test_not_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
