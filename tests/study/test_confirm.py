"""Confirmation: when the search ends, its best configurations train again with further seeds, once,
whatever the number of workers or resumes; the best configuration is chosen over all its runs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from harness.config import ConfigError, load_config
from harness.storage import ATTR_CONFIRM, ATTR_CONFIRMED, ATTR_REPEAT, ATTR_RUN_ID, repeat_of
from harness.study import loop
from harness.study.report import best_trial
from tests.study.sweeps import SeededBackend, start_seeded_worker, sweep_config, use_backend

CONFIRM = {
    "confirm": {"top_k": 2, "seeds": 2},
    "n_trials": 3,
    "sampler": {"type": "grid"},  # each of the three configurations once
    "search_space": {"lr_multiplier": [0.5, 1.1, 3.0]},
}


def repeats(trials: list[FrozenTrial]) -> list[tuple[int, int]]:
    """(search trial, k) of every COMPLETE repeat."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and repeat_of(t) is not None]
    return sorted((repeat_of(t), t.user_attrs[ATTR_REPEAT]) for t in done)


def assert_confirmed(study: optuna.Study, client: MlflowClient, parent_id: str) -> None:
    """Three search trials (lr 0.5, 1.1, 3.0 in some order), the best two trained twice more each."""
    trials = study.get_trials()
    search = [t for t in trials if repeat_of(t) is None and t.state == TrialState.COMPLETE]
    assert len(search) == 3 and not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    by_lr = {t.params["lr_multiplier"]: t.number for t in search}
    top = sorted([by_lr[1.1], by_lr[0.5]])
    assert repeats(trials) == [(n, k) for n in top for k in (1, 2)]  # each once, none for lr 3.0
    assert study.user_attrs[ATTR_CONFIRM] == {"trials": top, "seeds": 2}
    confirmed = {row["trial"]: row for row in study.user_attrs[ATTR_CONFIRMED]}
    best = confirmed[by_lr[1.1]]
    assert best["best"] and best["runs"] == 3 and best["mean"] == pytest.approx(0.1 + 0.01)  # seeds +0, +1, +2
    assert best["seed_sd"] == pytest.approx(0.01) and best["vs_baseline"] is None  # evaluation off
    assert not confirmed[by_lr[0.5]]["best"] and best_trial(study).number == by_lr[1.1]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["best/seeds"] == 3.0
    assert parent.data.tags["best.trial_number"] == str(by_lr[1.1])


def test_confirm_is_refused_without_n_trials_or_with_several_objectives(study_yaml: Path) -> None:
    with pytest.raises(ConfigError, match=r"confirm: .*this study has none \(it stops at timeout_minutes\)"):
        load_config(study_yaml, ["confirm={top_k: 1, seeds: 2}", "n_trials=null", "timeout_minutes=5"])
    two = "objective.metrics=[{metric: eval_loss}, {metric: train_loss}]"
    with pytest.raises(ConfigError, match="confirm: retrains the best configurations, but a multi-objective"):
        load_config(study_yaml, ["confirm={top_k: 1, seeds: 2}", two])
    assert load_config(study_yaml, ["confirm={top_k: 2, seeds: 3}"]).confirm.seeds == 3


def test_the_best_configurations_train_again_as_tagged_unpruned_repeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db", **CONFIRM)
    use_backend(monkeypatch, SeededBackend())
    result = loop.run_sweep(config)
    client = MlflowClient(config.mlflow.tracking_uri)
    assert_confirmed(result.study, client, result.parent_run_id)

    for trial in result.study.get_trials():
        run = client.get_run(trial.user_attrs[ATTR_RUN_ID])
        original = repeat_of(trial)
        if original is None:
            assert run.info.run_name == f"trial-{trial.number}" and trial.intermediate_values == {1: 1.0}
            assert "harness.repeat_of" not in run.data.tags and run.data.metrics["seed_offset"] == 0.0
            continue
        k = trial.user_attrs[ATTR_REPEAT]
        assert run.info.run_name == f"trial-{trial.number} (repeat of {original}, seed {k})"
        assert (run.data.tags["harness.repeat_of"], run.data.tags["harness.repeat"]) == (str(original), str(k))
        assert run.data.metrics["seed_offset"] == k  # the backend trained with seed + k
        assert trial.intermediate_values == {}  # never reported to the pruner, so never pruned
        assert trial.params == result.study.trials[original].params
    confirmation = json.loads(Path(client.download_artifacts(result.parent_run_id, "confirmation.json")).read_text())
    assert [row["best"] for row in confirmation["configurations"]].count(True) == 1

    again = loop.run_sweep(config)  # resumed when all is done: nothing runs, nothing is queued again
    assert again.ran == 0 and len(again.study.get_trials()) == 7


def test_an_interrupted_confirmation_resumes_each_repeat_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db", **CONFIRM)
    calls = []

    def stop_on_the_second_repeat() -> None:
        calls.append(1)
        if len(calls) == 5:  # 3 search trials, then the repeats
            raise KeyboardInterrupt

    use_backend(monkeypatch, SeededBackend(on_train=stop_on_the_second_repeat))
    with pytest.raises(KeyboardInterrupt):
        loop.run_sweep(config)
    study = optuna.load_study(study_name="s", storage=config.storage)
    assert len(repeats(study.get_trials())) == 1  # one repeat done, one interrupted, two queued

    use_backend(monkeypatch, SeededBackend())
    result = loop.run_sweep(config)
    assert_confirmed(result.study, MlflowClient(config.mlflow.tracking_uri), result.parent_run_id)
    interrupted = [t for t in result.study.get_trials() if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and repeat_of(interrupted[0]) is not None
    run = MlflowClient(config.mlflow.tracking_uri).get_run(interrupted[0].user_attrs[ATTR_RUN_ID])
    assert run.info.status == "KILLED" and run.data.tags["harness.interrupted"] == "true"  # Ctrl-C, not RUNNING


def test_two_workers_queue_and_run_each_repeat_once(tmp_path: Path) -> None:
    config = sweep_config(tmp_path, f"sqlite:///{tmp_path}/optuna.db", **{**CONFIRM, "n_trials": 3})
    workers = [start_seeded_worker(config) for _ in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0] and all("done" in o for o in outputs)

    study = optuna.load_study(study_name="s", storage=config.storage)
    client = MlflowClient(config.mlflow.tracking_uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("s").experiment_id], "tags.`harness.role` = 'parent'")
    search = [t for t in study.get_trials() if repeat_of(t) is None]
    if len(search) == 3:  # two workers asking at the same instant may overshoot n_trials by one
        assert_confirmed(study, client, parent.info.run_id)
    else:
        assert len(repeats(study.get_trials())) == 4 and study.user_attrs[ATTR_CONFIRMED]
    assert len({t.user_attrs["harness.worker"] for t in study.get_trials()}) == 2
