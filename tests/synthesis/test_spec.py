"""Specs and study keys for synthesis and augmentation are refused at load, with their dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, load_config
from harness.synthesis.synth import SpecError, item_id, load_spec, plan_items
from tests.synthesis.conftest import spec_dict, write_spec


def study(tmp_path: Path, **changes: object) -> Path:
    train = tmp_path / "train.jsonl"
    train.write_text("")
    config = {"study_name": "s", "data": {"train_file": str(train)}, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"search_space": {"augmentation": ["none", "shuffle"]}}, "search_space.augmentation"),
        ({"search_space": {"augmentation": {"low": 0, "high": 1}}}, "search_space.augmentation"),
        ({"backend": "openai", "search_space": {"augmentation": ["none", "eda"]}}, "augmentation"),
        ({"data": {"train_file": "x.jsonl", "augment": {"factor": 0}}}, "data.augment.factor"),
        ({"data": {"train_file": "x.jsonl", "augment": {"endpoint": {"api_key_env": "sk-123 456"}}}}, "api_key_env"),
    ],
)
def test_bad_augmentation_keys_are_refused(tmp_path: Path, change: dict, where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(study(tmp_path, **change))
    assert where in str(raised.value) and "sk-123" not in str(raised.value)


def test_augmentation_values_load(tmp_path: Path) -> None:
    config = load_config(study(tmp_path, search_space={"augmentation": ["none", "eda", "paraphrase"]}))
    assert config.search_space.augmentation == ["none", "eda", "paraphrase"]
    assert config.data.augment.factor == 1 and config.data.augment.endpoint.kind == "llama_cpp"
    assert load_config(study(tmp_path)).search_space.augmentation is None  # not sampled unless asked


def test_item_ids_follow_what_decides_the_text(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "a.yaml", spec_dict(tmp_path, "http://127.0.0.1:1/v1")))
    items = plan_items(spec)
    assert len({i.id for i in items}) == len(items) and [i.id for i in plan_items(spec)] == [i.id for i in items]
    persona, topic = spec.personas[0], spec.personas[0].topics[0]
    base = item_id(spec, persona, topic, 0)
    assert item_id(spec.model_copy(update={"seed": 8}), persona, topic, 0) != base
    assert item_id(spec.model_copy(update={"answer_instructions": "Be brief."}), persona, topic, 0) != base
    # Filters and the tracking store do not change what is generated: the state file stays valid.
    assert (
        item_id(
            spec.model_copy(update={"filters": spec.filters.model_copy(update={"max_words": 5})}), persona, topic, 0
        )
        == base
    )


def test_unreadable_and_non_mapping_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("personas: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match=str(bad)):
        load_spec(bad)
