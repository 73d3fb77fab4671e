"""SFT -> DPO lineage: a base_model that names a tracked fine-tune resolves once to local full weights,
bad specs are one-line config errors, and the lineage is tagged on parent, trial runs and versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.config import ConfigError, load_config
from harness.lifecycle import serving
from harness.lifecycle.lineage import pin, resolve_base, resolve_spec
from harness.tracking import TAG_BASE_MODEL, TAG_BASE_RUN, TAG_BASE_SOURCE, TAG_BASE_VERSION
from tests.backends.test_local_dpo import dpo_config, pref_files  # noqa: F401 (a fixture)

SFT = ["n_trials=1", "search_space.method=lora", "search_space.batch_size=4", "evaluation.enabled=false"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_specs_that_name_nothing_usable_are_one_line_errors(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(uri, uri)
    client.create_registered_model("sft")
    experiment = client.create_experiment("e")
    unfinished = client.create_run(experiment).info.run_id
    bare = client.create_run(experiment).info.run_id
    client.set_terminated(bare, "FINISHED")
    cases = {
        "models:/nope@champion": "no registered model named 'nope'",
        "models:/sft@champion": "sft has no alias 'champion' (its aliases: none)",
        "models:/sft/3": "sft has no version 3",
        "models:/sft": "expected models:/NAME@ALIAS, models:/NAME/VERSION or run:RUN_ID",
        "run:0123456789abcdef0123456789abcdef": "no run '0123456789abcdef0123456789abcdef'",
        f"run:{unfinished}": "is RUNNING: only a finished run's weights can be a base",
        f"run:{bare}": f"run {bare} left no weights",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError) as error:
            pin(spec, client)
        text = str(error.value)
        assert text.startswith(f"base_model {spec!r}: ") and message in text and "\n" not in text, text


def test_a_study_on_a_bad_spec_stops_before_any_run(tmp_path: Path, pref_files) -> None:  # noqa: F811
    from harness.study import run_sweep

    config = load_config(dpo_config(tmp_path, "models:/nope@champion", pref_files))
    with pytest.raises(ConfigError, match=r"^base_model 'models:/nope@champion': no registered model named 'nope'"):
        run_sweep(config)
    assert MlflowClient(config.mlflow.tracking_uri).get_experiment_by_name("tiny-dpo") is None


def test_an_ordinary_base_model_is_left_as_it_is(tmp_path: Path, pref_files) -> None:  # noqa: F811
    config = load_config(dpo_config(tmp_path, "smollm2", pref_files))
    resolved = resolve_base(config)
    assert resolved.config is config and resolved.tags == {}


@pytest.mark.slow
def test_dpo_from_a_finished_sft_trial_resolves_trains_and_tags_its_lineage(
    tmp_path: Path,
    study_yaml: Path,
    pref_files,  # noqa: F811
    cache: Path,
) -> None:
    from harness.study import run_sweep

    sft = run_sweep(load_config(study_yaml, SFT))  # registers "tiny" version 1 (a LoRA adapter)
    sft_run = sft.study.trials[0].user_attrs["mlflow_run_id"]
    spec = f"run:{sft_run}"
    extra = {
        "search_space": {"method": "lora", "batch_size": 2, "beta": 0.2},
        "n_trials": 1,
        "sampler": {"type": "random"},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db"},  # registers the best trial
    }
    path = dpo_config(tmp_path, spec, pref_files, **extra)
    config = load_config(path)
    dpo = run_sweep(config)

    client = MlflowClient(config.mlflow.tracking_uri)
    expected = {TAG_BASE_MODEL: spec, TAG_BASE_SOURCE: spec, TAG_BASE_RUN: sft_run}
    trial = client.get_run(dpo.study.trials[0].user_attrs["mlflow_run_id"])
    for run in (client.get_run(dpo.parent_run_id), trial):
        assert {k: run.data.tags.get(k) for k in expected} == expected
    assert trial.info.status == "FINISHED"
    (version,) = client.search_model_versions("name = 'tiny-dpo'")
    assert {k: version.tags.get(k) for k in expected} == expected
    (materialised,) = (cache / "lineage").iterdir()
    assert json.loads((materialised / "harness_lineage.json").read_text())["pinned"] == spec

    # The registered DPO adapter loads anywhere: its base is the pinned SFT run, merged on load.
    model = serving.load("models:/tiny-dpo/1", config.mlflow.tracking_uri)
    assert len(model.predict(["How do I reverse a list?"], params={"max_new_tokens": 4})) == 1

    # A registered alias pins to the version it names now, with its own tags.
    client.set_registered_model_alias("tiny", "champion", "1")
    local, lineage = resolve_spec("models:/tiny@champion", config.mlflow.tracking_uri)
    assert (local / "config.json").exists() and lineage.pinned == "models:/tiny/1"
    assert lineage.tags()[TAG_BASE_VERSION] == "tiny/1" and lineage.tags()[TAG_BASE_RUN] == sft_run
