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
    assert config.enqueue and config.enqueue[0]["method"] == "lora"  # its warm start fits its search space
    assert config.confirm is not None and config.n_trials is not None and config.n_trials > len(config.enqueue)


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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"search_space": {"method": "dpo"}}, "search_space.method: dpo not available on the local backend"),
        (
            {"backend": "openai", "search_space": {"method": "supervised", "dropout": 0.1}},
            "search_space.dropout: not a hyperparameter of the remote",
        ),
        (
            {"backend": "openai", "search_space": {"method": "lora"}},
            "search_space.method: lora not available on the openai backend",
        ),
        (
            {
                "backend": "azure_openai",
                "search_space": {"method": "supervised", "training_args": {"weight_decay": 0.1}},
            },
            "search_space.training_args: TrainingArguments exist only on the local backend",
        ),
        ({"search_space": {"beta": 0.1}}, "search_space.beta: only used with training.method dpo"),
        (
            {"backend": "openai", "search_space": {"method": "supervised", "beta": 0.1}},
            "search_space.beta: only used with method dpo",
        ),
        ({"backend": "openai", "training": {"eval_steps": 3}}, "training: unknown key"),
        ({"openai": {"max_concurrent_jobs": 3}}, "openai: unknown key"),
        ({"backend": "foo"}, "backend: must be local, openai or azure_openai, got 'foo'"),
        (
            {"objective": {"metric": "consistency/heldout/consistncy"}},
            "objective.metric: no trial of this study produces 'consistency/heldout/consistncy'",
        ),
        (
            {
                "objective": {"weights": {"eval_loss": 1.0, "consistency/heldout/judge": 1.0}},
                "evaluation": {"scorers": ["rouge_l"]},
            },
            "objective: no trial of this study produces 'consistency/heldout/judge'",
        ),
        (
            {"sampler": {"type": "grid"}, "search_space": {"dropout": {"low": 0.0, "high": 0.1}}},
            "sampler.type: grid tries every combination, but search_space.dropout",
        ),
    ],
)
def test_combinations_that_mean_nothing_are_refused_at_load(tmp_path: Path, extra: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, {**BASE, **extra}))
    assert message in str(error.value)


def test_each_backend_gets_its_own_config_class(tmp_path: Path) -> None:
    from harness.config import LocalStudyConfig, RemoteStudyConfig

    local = load_config(write(tmp_path, BASE))
    remote = load_config(
        write(
            tmp_path,
            {**BASE, "backend": "openai", "search_space": {"method": ["supervised", "dpo"], "beta": [0.1, 0.5]}},
        )
    )
    assert isinstance(local, LocalStudyConfig) and local.parallel_trials == 1
    assert isinstance(remote, RemoteStudyConfig) and remote.parallel_trials == remote.openai.max_concurrent_jobs
    assert not hasattr(remote.search_space, "dropout") and not hasattr(local, "openai")
    # Objective names the evaluation produces are accepted, per-criterion judge scores included.
    judged = load_config(
        write(
            tmp_path, {**BASE, "objective": {"metric": "consistency/heldout/judge_structure", "direction": "maximize"}}
        )
    )
    assert judged.objective.metric == "consistency/heldout/judge_structure"


def test_lora_keys_on_a_full_only_study_are_accepted_and_unsampled(tmp_path: Path) -> None:
    from optuna.trial import FixedTrial

    from harness.search_space import suggest

    config = load_config(write(tmp_path, {**BASE, "search_space": {"method": "full", "lora_rank": [8, 16]}}))
    params = suggest(FixedTrial({}), config.search_space, config.backend)
    assert params.method == "full" and params.lora_rank is None


@pytest.mark.parametrize("name", ["../escape", "/srv/x", "a/b", ".hidden", "..", "a\\b", "tab\tname", "naïve", ""])
def test_a_study_name_that_is_not_one_safe_path_part_is_refused(tmp_path: Path, name: str) -> None:
    # The name is a directory under training.work_dir: "../escape" or "/srv/x" would write outside it.
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, {**BASE, "study_name": name}))
    assert "study_name:" in str(error.value)


def test_a_safe_study_name_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {**BASE, "study_name": "Quick-start_2.v1"}))
    assert config.training.run_dir(config.study_name, "r").parent.name == "Quick-start_2.v1"


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("seed", "training.seed"),
        ("learning_rate", "training.base_learning_rate"),
        ("eval_steps", "training.eval_steps"),
        ("bf16", "training.precision"),
        ("logging_steps", "training.logging_steps"),
        ("report_to", "the harness sets report_to itself"),
    ],
)
def test_training_args_the_harness_sets_are_refused_with_their_owner(tmp_path: Path, key: str, owner: str) -> None:
    data = {**BASE, "search_space": {"training_args": {key: [1, 2], "weight_decay": 0.1}}}
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, data))
    assert f"search_space.training_args.{key}: " in str(error.value)
    assert owner in str(error.value)


def test_dpo_trials_own_their_trl_fields_too(tmp_path: Path) -> None:
    dpo = {**BASE, "training": {"method": "dpo"}}
    with pytest.raises(ConfigError, match=r"search_space\.training_args\.max_length: .* from max_seq_length"):
        load_config(write(tmp_path, {**dpo, "search_space": {"training_args": {"max_length": 64}}}))
    # An SFT study's trainer has no such field of its own: the name is left to the TrainingArguments check.
    sft = load_config(write(tmp_path, {**BASE, "search_space": {"training_args": {"max_length": 64}}}))
    assert sft.search_space.training_args == {"max_length": 64}


JUDGED = {"objective": {"metric": "consistency/heldout/judge", "direction": "maximize"}}


def test_an_unchecked_judge_in_the_objective_needs_trust_unchecked(tmp_path: Path) -> None:
    unchecked = {**BASE, **JUDGED, "evaluation": {"judge": {"check": False}}}
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, unchecked))
    assert "evaluation.judge.check" in str(error.value)
    assert "evaluation.judge.trust_unchecked: true" in str(error.value)

    trusted = load_config(
        write(tmp_path, {**unchecked, "evaluation": {"judge": {"check": False, "trust_unchecked": True}}})
    )
    assert trusted.judge_unchecked
    # A checked judge, or an unchecked one the objective does not read, needs no trust.
    assert not load_config(write(tmp_path, {**BASE, **JUDGED})).judge_unchecked
    reporting = load_config(write(tmp_path, {**BASE, "evaluation": {"judge": {"check": False}}}))
    assert not reporting.judge_unchecked
