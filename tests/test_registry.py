"""Registration and promotion against a real MLflow store in tmp_path, read back with MlflowClient."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from harness.config import ObjectiveConfig, StudyConfig, load_config
from harness.data.split import load_splits
from harness.evaluation.evaluator import example_id, open_evaluator
from harness.lifecycle import registry, selection
from harness.tracking import TAG_MODEL_DIR, TAG_REMOTE_MODEL, Tracker

FAST_EVAL = [
    "evaluation.scorers=[rouge_l]",
    "evaluation.train_sample_size=1",
    "evaluation.heldout_sample_size=2",
    "evaluation.max_new_tokens=4",
    "training.precision=fp32",
]


def registry_config(study_yaml: Path, *overrides: str) -> StudyConfig:
    return load_config(study_yaml, [*FAST_EVAL, *overrides])


def make_trial_run(
    config: StudyConfig,
    number: int,
    metrics: dict[str, float],
    *,
    model_dir: Path | None = None,
    remote_model: str | None = None,
    eval_digest: str = "eval-1",
    backend: str = "local",
    status: str = "FINISHED",
) -> str:
    """A trial run as the sweep leaves it (tags, metrics), under the study's parent run; RUNNING is left open."""
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name)
    parent = tracker.parent_run(config.study_name, {})
    if not tracker.client.get_run(parent).data.params:
        tracker.log_params(parent, {"n_trials": config.n_trials})
        tracker.log_dict(parent, config.model_dump(mode="json"), "config.json")
    tags = {
        "harness.study": config.study_name,
        "harness.trial_number": str(number),
        "harness.trial_state": "COMPLETE",
        "harness.base_model": config.base_model,
        "harness.dataset_digest": "data-1",
        "harness.backend": backend,
        "harness.eval_digest": eval_digest,
    }
    if model_dir is not None:
        tags[TAG_MODEL_DIR] = str(model_dir)
    if remote_model is not None:
        tags[TAG_REMOTE_MODEL] = remote_model
    run_id = tracker.child_run(parent, f"trial-{number}", tags)
    tracker.log_metrics(run_id, metrics)
    if status != "RUNNING":
        tracker.end(run_id, status)
    return run_id


def make_baseline_run(
    config: StudyConfig, metrics: dict[str, float], *, eval_digest: str = "eval-1", rows: list[float] | None = None
) -> str:
    """The study's untuned baseline as the sweep leaves it: the child run ``baseline`` (role baseline),
    with the per-example held-out table when ``rows`` are given."""
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name)
    parent = tracker.parent_run(config.study_name, {})
    tags = {
        "harness.role": "baseline",
        "harness.study": config.study_name,
        "harness.dataset_digest": "data-1",
        "harness.eval_digest": eval_digest,
    }
    run_id = tracker.child_run(parent, "baseline", tags)
    if rows is not None:
        metrics = {**metrics, "consistency/heldout/rouge_l": log_heldout_table(tracker.client, run_id, rows)}
    tracker.log_metrics(run_id, metrics)
    tracker.end(run_id, "FINISHED")
    return run_id


def versions(client: MlflowClient, name: str) -> dict[str, Any]:
    return {
        str(v.version): client.get_model_version(name, v.version)
        for v in client.search_model_versions(f"name = '{name}'")
    }


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}


def snapshot(client: MlflowClient) -> tuple:
    """Everything a promotion could write: models, versions, aliases, tags, runs."""
    models = sorted((m.name, tuple(sorted(m.aliases.items()))) for m in client.search_registered_models())
    found = [client.get_model_version(v.name, v.version) for v in client.search_model_versions()]
    model_versions = sorted((v.name, v.version, tuple(sorted(v.tags.items()))) for v in found)
    runs = sorted(
        (r.info.run_id, r.info.status, tuple(sorted(r.data.tags.items())), tuple(sorted(r.data.metrics.items())))
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id])
    )
    return models, model_versions, runs


def _trial(number: int, values: list[float], state: TrialState = TrialState.COMPLETE) -> Any:
    trial = create_trial(
        values=values if state == TrialState.COMPLETE else None,
        state=state,
        params={"x": 0.0},
        distributions={"x": FloatDistribution(0, 1)},
    )
    trial.number = number
    return trial


def test_select_best_single_objective_skips_unfinished_and_infinite() -> None:
    objective = ObjectiveConfig(metric="eval_loss")
    trials = [
        _trial(0, [0.9]),
        _trial(1, [math.inf]),
        _trial(2, [0.4]),
        _trial(3, [], TrialState.FAIL),
        _trial(4, [0.4]),
    ]
    assert selection.select_best(trials, objective).number == 2  # ties: the lower number
    maximize = ObjectiveConfig(metric="consistency/heldout/judge", direction="maximize")
    assert selection.select_best(trials, maximize).number == 0
    assert selection.select_best([_trial(0, [], TrialState.PRUNED)], objective) is None


def test_select_best_multi_objective_takes_the_pareto_front_by_first_objective() -> None:
    objective = ObjectiveConfig(
        metrics=[{"metric": "eval_loss"}, {"metric": "consistency/heldout/judge", "direction": "maximize"}]
    )
    # Front: 0, 1 and 3 (3 dominates 2); the lowest eval_loss on it wins.
    trials = [_trial(0, [1.0, 90.0]), _trial(1, [0.5, 40.0]), _trial(2, [0.45, 10.0]), _trial(3, [0.4, 20.0])]
    assert selection.select_best(trials, objective).number == 3
    dominated_best_loss = [_trial(0, [1.0, 90.0]), _trial(1, [0.3, 50.0]), _trial(2, [0.3, 60.0])]
    # A tie on the first objective goes to the trial on the front, not to the lower number.
    assert selection.select_best(dominated_best_loss, objective).number == 2


def test_promote_moves_alias_only_for_a_better_candidate(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    runs = [
        make_trial_run(
            config,
            n,
            {"eval_loss": loss, "objective": loss, "consistency/heldout/rouge_l": 0.1 * n},
            model_dir=tiny_llama_dir,
        )
        for n, loss in enumerate([1.0, 0.5, 0.8])
    ]
    baseline = make_baseline_run(config, {"eval_loss": 2.0})
    first = registry.promote(config, runs[0])
    assert first.promoted and first.candidate_version == "1" and aliases(client, "tiny") == {"champion": "1"}
    assert first.baseline.run_id == baseline and first.reason.startswith("beats the baseline: eval_loss=1 vs")

    better = registry.promote(config, runs[1])
    assert better.promoted and better.champion_version == "1" and better.candidate_version == "2"
    assert better.champion.values == {"eval_loss": 1.0} and better.candidate.values == {"eval_loss": 0.5}
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}

    worse = registry.promote(config, runs[2])
    assert not worse.promoted and "does not beat" in worse.reason
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}
    assert set(versions(client, "tiny")) == {"1", "2"}  # the loser was not registered

    again = registry.promote(config, runs[1])
    assert again.already and not again.promoted

    v2 = client.get_model_version_by_alias("tiny", "champion")
    assert v2.run_id == runs[1]
    tags = v2.tags
    assert tags["harness.run_id"] == runs[1]
    assert tags["harness.study"] == "tiny" and tags["harness.trial_number"] == "1"
    assert tags["harness.eval_digest"] == "eval-1" and tags["harness.dataset_digest"] == "data-1"
    assert tags["harness.base_model"] == str(tiny_llama_dir)
    assert float(tags["objective/eval_loss"]) == 0.5 and float(tags["consistency/heldout/rouge_l"]) == pytest.approx(
        0.1
    )
    assert tags["harness.model_kind"] == "full"
    assert tags["harness.promotion"].startswith("champion: beats the champion")


def test_register_is_idempotent_and_links_the_trial_run(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    run_id = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    client = MlflowClient(config.mlflow.tracking_uri)
    status_before = client.get_run(run_id).info
    version = registry.register(config, run_id)
    assert registry.register(config, run_id).version == version.version
    assert len(versions(client, "tiny")) == 1
    after = client.get_run(run_id).info
    assert (after.status, after.end_time) == (status_before.status, status_before.end_time)  # not reopened
    assert client.get_logged_model(version.source.removeprefix("models:/")).source_run_id == run_id


@pytest.mark.parametrize("failing", ["champion_alias", "create_version", "previous_alias"])
def test_failure_half_way_leaves_the_champion_in_place(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    old = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    new = make_trial_run(config, 1, {"eval_loss": 0.2}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})
    registry.promote(config, old)
    assert aliases(client, "tiny") == {"champion": "1"}

    set_alias = MlflowClient.set_registered_model_alias

    def flaky_alias(self: MlflowClient, name: str, alias: str, version: str) -> None:
        if alias == failing.removesuffix("_alias"):
            raise RuntimeError("registry went away")
        set_alias(self, name, alias, version)

    def flaky_create(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("registry went away")

    if failing == "create_version":
        monkeypatch.setattr(MlflowClient, "create_model_version", flaky_create)
    else:
        monkeypatch.setattr(MlflowClient, "set_registered_model_alias", flaky_alias)
    with pytest.raises(RuntimeError, match="went away"):
        registry.promote(config, new)
    monkeypatch.undo()

    assert aliases(client, "tiny") == {"champion": "1"}  # previous was put back (it never existed)
    champion = client.get_model_version_by_alias("tiny", "champion")
    assert champion.run_id == old
    # The version itself may exist (registered and tagged), but nothing points at it.
    if failing == "create_version":
        assert set(versions(client, "tiny")) == {"1"}
    # A retry once the registry is back completes the promotion.
    assert registry.promote(config, new).promoted
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}


@pytest.mark.parametrize("status", ["FAILED", "KILLED", "RUNNING"])
def test_promote_refuses_a_run_that_did_not_finish(study_yaml: Path, tiny_llama_dir: Path, status: str) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    champion = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})
    registry.promote(config, champion)
    # Its metrics beat the champion's: only its status stands in the way.
    unfinished = make_trial_run(config, 1, {"eval_loss": 0.1}, model_dir=tiny_llama_dir, status=status)
    before = snapshot(client)
    for options in ({}, {"force": True}, {"dry_run": True}):
        with pytest.raises(registry.RegistryError, match=f"^run {unfinished} is {status}, not FINISHED"):
            registry.promote(config, unfinished, **options)
    assert snapshot(client) == before
    assert aliases(client, "tiny") == {"champion": "1"} and set(versions(client, "tiny")) == {"1"}


def test_dry_run_writes_nothing(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    old = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    new = make_trial_run(config, 1, {"eval_loss": 0.2}, model_dir=tiny_llama_dir)
    other_eval = make_trial_run(config, 2, {"eval_loss": 0.1}, model_dir=tiny_llama_dir, eval_digest="eval-2")
    make_baseline_run(config, {"eval_loss": 2.0})

    first = registry.promote(config, old, dry_run=True)
    assert first.promoted and first.dry_run and first.candidate_version is None
    assert client.search_registered_models() == []

    registry.promote(config, old)
    before = snapshot(client)
    result = registry.promote(config, new, dry_run=True)
    assert (
        result.promoted
        and "beats the champion" in result.reason
        and result.summary().startswith("dry run: would promote")
    )
    # Not comparable (another eval digest) and eval_loss cannot be re-measured: no decision, no writes.
    refused = registry.promote(config, other_eval, dry_run=True)
    assert not refused.promoted and "cannot be re-measured" in refused.reason
    assert snapshot(client) == before


def eval_digest(config: StudyConfig) -> str:
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name)
    with open_evaluator(config.evaluation, tracker, *load_splits(config.data, config.system_prompt)) as evaluator:
        return evaluator.digest


def test_champion_scored_elsewhere_is_reevaluated_before_comparing(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml, "objective.metric=consistency/heldout/rouge_l", "objective.direction=maximize")
    client = MlflowClient(config.mlflow.tracking_uri)
    digest = eval_digest(config)
    # The champion looks great, but on another evaluation: its 0.9 says nothing about this one.
    old = make_trial_run(
        config, 0, {"consistency/heldout/rouge_l": 0.9}, model_dir=tiny_llama_dir, eval_digest="old-eval"
    )
    new = make_trial_run(config, 1, {}, model_dir=tiny_llama_dir, eval_digest=digest)
    heldout_ids = [example_id(e) for e in load_splits(config.data, config.system_prompt)[1]]
    client.log_metric(new, "consistency/heldout/rouge_l", log_heldout_table(client, new, [0.99] * 4, heldout_ids))
    assert registry.promote(config, old, force=True).promoted  # crowned by hand, under another evaluation

    before = snapshot(client)
    dry = registry.promote(config, new, dry_run=True)
    assert not dry.promoted and "re-evaluated" in dry.reason and dry.reevaluation_run_id is None
    assert snapshot(client) == before

    result = registry.promote(config, new)
    assert result.promoted and result.reevaluation_run_id
    rerun = client.get_run(result.reevaluation_run_id)
    assert rerun.info.status == "FINISHED"
    assert rerun.data.tags["harness.eval_digest"] == digest
    assert rerun.data.tags["harness.registered_model"] == "tiny" and rerun.data.tags["harness.model_version"] == "1"
    assert rerun.data.tags["harness.role"] == "eval"
    assert result.champion.run_id == rerun.info.run_id
    assert (
        result.champion.values["consistency/heldout/rouge_l"]
        == rerun.data.metrics["consistency/heldout/rouge_l"]
        < 0.99
    )
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}


@pytest.mark.slow
def test_sweep_registers_its_best_lora_trial_and_the_alias_loads(study_yaml: Path) -> None:
    import mlflow.pyfunc

    from harness.lifecycle.serving import tracking_uri
    from harness.study import run_sweep

    config = load_config(
        study_yaml,
        ["evaluation.scorers=[embedding,rouge_l]", *FAST_EVAL[1:], "search_space.method=lora"],
    )
    result = run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    best = selection.select_best(result.study.trials, config.objective)
    registered = versions(client, "tiny")
    assert list(registered) == ["1"]  # run_sweep registered the best trial, and only it
    version = registered["1"]
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert version.tags["harness.model_kind"] == "lora"
    assert float(version.tags["objective/eval_loss"]) == pytest.approx(best.value, rel=1e-5)
    assert "consistency/heldout/embedding" in version.tags
    # Registered, not promoted: the sweep moves no alias, and the version says so.
    assert aliases(client, "tiny") == {}
    assert version.tags["harness.promotion"].startswith("not promoted: registered at the end of the sweep")

    # The first champion must beat the sweep's untuned `baseline` run on eval_loss. The tiny model
    # barely trains (its best trial has been seen both sides of the baseline): the rule decides.
    first = registry.promote(config)
    baseline = client.get_run(first.baseline.run_id)
    assert baseline.info.run_name == "baseline" and baseline.data.tags["harness.role"] == "baseline"
    beats = best.value < baseline.data.metrics["eval_loss"]
    assert first.promoted == beats
    assert first.reason.startswith("beats the baseline: eval_loss=" if beats else "does not beat the baseline:")
    promoted = first if beats else registry.promote(config, force=True)  # already registered, now champion
    assert promoted.promoted and promoted.candidate_version == "1"
    with tracking_uri(config.mlflow.tracking_uri):
        model = mlflow.pyfunc.load_model("models:/tiny@champion")
    answers = model.predict(["What does git stash do?"], params={"max_new_tokens": 3})
    assert len(answers) == 1 and isinstance(answers[0], str)


def log_heldout_table(
    client: MlflowClient, run_id: str, values: list[float | None], ids: list[str] | None = None
) -> float:
    """A per-example table as an evaluation logs it; returns its mean (the run's metric)."""
    import pandas as pd

    rows = [{"question": f"q{i}", "reference": f"r{i}", "answer": "a", "rouge_l": v} for i, v in enumerate(values)]
    for row, row_id in zip(rows, ids or [], strict=False):
        row["id"] = row_id
    client.log_table(run_id, data=pd.DataFrame(rows), artifact_file="eval/heldout.json")
    return sum(v for v in values if v is not None) / sum(v is not None for v in values)


def test_promotion_gate_reads_the_paired_interval_from_the_runs_tables(study_yaml: Path, tiny_llama_dir: Path) -> None:
    import json

    import numpy as np

    from harness.evaluation.tables import load_rows

    config = registry_config(study_yaml, "objective.metric=consistency/heldout/rouge_l", "objective.direction=maximize")
    client = MlflowClient(config.mlflow.tracking_uri)
    rng = np.random.default_rng(0)
    base, noise = rng.uniform(0.2, 0.6, 40), rng.normal(0, 0.1, 40)
    per_run = {
        "champion": [*base[:-1].tolist(), None],  # one example unscored: dropped from the pairs
        "noisy": (base + 0.01 + noise - noise.mean()).tolist(),  # a higher mean, inside the noise
        "clear": (base + 0.1 + rng.normal(0, 0.02, 40)).tolist(),
    }
    runs = {}
    for number, (label, values) in enumerate(per_run.items()):
        runs[label] = make_trial_run(config, number, {}, model_dir=tiny_llama_dir)
        mean = log_heldout_table(client, runs[label], values)
        client.log_metric(runs[label], "consistency/heldout/rouge_l", mean)
    assert load_rows(client, runs["champion"], "heldout")[-1]["rouge_l"] is None
    assert load_rows(client, runs["champion"], "train") is None
    no_table = make_trial_run(config, 3, {"consistency/heldout/rouge_l": 0.99}, model_dir=tiny_llama_dir)
    baseline = make_baseline_run(config, {}, rows=(base - 0.15 + rng.normal(0, 0.02, 40)).tolist())
    first = registry.promote(config, runs["champion"])
    assert first.promoted and first.reason.startswith("beats the baseline: consistency/heldout/rouge_l +0.")
    first_evidence = json.loads(client.get_model_version("tiny", "1").tags["harness.promotion_interval"])
    assert first_evidence["vs_run"] == baseline and first_evidence["vs_version"] is None

    noisy = registry.promote(config, runs["noisy"])
    name = "consistency/heldout/rouge_l"
    assert not noisy.promoted and noisy.candidate.values[name] > noisy.champion.values[name]  # the old rule: promoted
    assert noisy.interval.n == 39 and noisy.interval.low <= 0 < noisy.interval.high
    assert "inside the noise" in noisy.reason and "vs version 1" in noisy.reason
    assert set(versions(client, "tiny")) == {"1"}

    # No per-example table: no evidence, no promotion, whatever its mean says (0.99).
    for dry_run in (True, False):
        refused = registry.promote(config, no_table, dry_run=dry_run)
        assert not refused.promoted and refused.interval is None
        assert refused.reason.startswith("no per-example evidence against version 1: ")
        assert f"run {no_table} has no per-example table eval/heldout.json" in refused.reason
        assert "strict improvement" not in refused.reason
    assert set(versions(client, "tiny")) == {"1"}

    clear = registry.promote(config, runs["clear"])
    assert clear.promoted and clear.interval.low > 0 and clear.interval.level == 0.9
    assert clear.interval_line.startswith("consistency/heldout/rouge_l +0.")
    tags = client.get_model_version(config.registry_name, clear.candidate_version).tags
    assert tags["harness.promotion"].startswith("champion: beats the champion: consistency/heldout/rouge_l +0.")
    evidence = json.loads(tags["harness.promotion_interval"])
    assert evidence["vs_version"] == "1" and evidence["n"] == 39 and evidence["low"] == clear.interval.low
    assert evidence["vs_run"] == runs["champion"]
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}


HELDOUT_ROUGE = ("objective.metric=consistency/heldout/rouge_l", "objective.direction=maximize")


def trial_with_table(config: StudyConfig, number: int, values: list[float], model_dir: Path) -> str:
    run_id = make_trial_run(config, number, {}, model_dir=model_dir)
    client = MlflowClient(config.mlflow.tracking_uri)
    client.log_metric(run_id, "consistency/heldout/rouge_l", log_heldout_table(client, run_id, values))
    return run_id


def test_the_first_champion_must_beat_the_untuned_baseline(study_yaml: Path, tiny_llama_dir: Path) -> None:
    import numpy as np

    config = registry_config(study_yaml, *HELDOUT_ROUGE)
    client = MlflowClient(config.mlflow.tracking_uri)
    base = np.random.default_rng(3).uniform(0.3, 0.6, 30)
    baseline = make_baseline_run(config, {}, rows=base.tolist())
    worse = trial_with_table(config, 0, (base - 0.1).tolist(), tiny_llama_dir)
    better = trial_with_table(config, 1, (base + 0.1).tolist(), tiny_llama_dir)

    for dry_run in (True, False):
        refused = registry.promote(config, worse, dry_run=dry_run)
        assert not refused.promoted and refused.champion is None and refused.baseline.run_id == baseline
        assert refused.reason.startswith("does not beat the baseline: consistency/heldout/rouge_l -0.1")
        assert f"vs the untuned baseline (run {baseline})" in refused.reason and "is no better" in refused.reason
    assert client.search_model_versions("name = 'tiny'") == []  # the loser was not registered

    promoted = registry.promote(config, better)
    assert promoted.promoted and promoted.interval.low > 0
    assert promoted.reason.startswith("beats the baseline: consistency/heldout/rouge_l +0.1")
    assert aliases(client, "tiny") == {"champion": "1"}
    tags = client.get_model_version("tiny", "1").tags
    assert tags["harness.promotion"].startswith("champion: beats the baseline: ")


def test_a_baseline_without_its_table_is_measured_again(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml, *HELDOUT_ROUGE)
    client = MlflowClient(config.mlflow.tracking_uri)
    candidate = trial_with_table(config, 0, [0.9] * 4, tiny_llama_dir)
    make_baseline_run(config, {"consistency/heldout/rouge_l": 0.1})  # its mean, but no per-example table
    before = snapshot(client)
    dry = registry.promote(config, candidate, dry_run=True)
    assert not dry.promoted and dry.reason.startswith("no evidence against the untuned baseline: ")
    assert (
        "no run measured it like the candidate (eval digest eval-1, a per-example table eval/heldout.json); without --dry-run it is re-evaluated first"
        in dry.reason
    )
    assert snapshot(client) == before


def test_without_a_baseline_the_first_champion_needs_force(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    alone = make_trial_run(config, 0, {"eval_loss": 0.1}, model_dir=tiny_llama_dir)
    refused = registry.promote(config, alone)  # eval_loss, and no baseline run measured it
    assert not refused.promoted and refused.baseline is None
    assert refused.reason.startswith("no evidence against the untuned baseline: no run measured it like the candidate")
    assert "--force promotes without a comparison" in refused.reason
    assert client.search_model_versions("name = 'tiny'") == []
    forced = registry.promote(config, alone, force=True)
    assert forced.promoted and forced.reason == "forced (no comparison)"
    assert aliases(client, "tiny") == {"champion": "1"}


def test_versions_say_why_they_were_or_were_not_promoted(study_yaml: Path, tiny_llama_dir: Path) -> None:
    import optuna

    from harness.storage import ATTR_RUN_ID

    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    make_baseline_run(config, {"eval_loss": 2.0})
    champion = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    assert registry.promote(config, champion).promoted
    # The end of a sweep registers its best trial: a version, but never the champion alias.
    worse = make_trial_run(config, 1, {"eval_loss": 1.5}, model_dir=tiny_llama_dir)
    study = optuna.create_study()
    study.add_trial(create_trial(value=1.5, user_attrs={ATTR_RUN_ID: worse}))
    registered = registry.register_best(config, study)
    assert registered is not None and str(registered.version) == "2"
    assert aliases(client, "tiny") == {"champion": "1"}
    assert (
        client.get_model_version("tiny", "2")
        .tags["harness.promotion"]
        .startswith("not promoted: registered at the end of the sweep")
    )
    refused = registry.promote(config, worse)
    assert not refused.promoted and aliases(client, "tiny") == {"champion": "1"}
    tag = client.get_model_version("tiny", "2").tags["harness.promotion"]
    assert tag == f"champion: not promoted: {refused.reason}"
    assert tag.startswith("champion: not promoted: does not beat the champion: eval_loss=1.5 vs version 1")
