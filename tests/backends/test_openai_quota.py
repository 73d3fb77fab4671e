"""An exhausted quota stops the study, says so with exit status 1, and the study resumes after it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from harness.backends.openai.backend import ATTR_COST, OpenAIBackend
from harness.cli import app
from harness.config import StudyConfig
from harness.storage import ATTR_RETRY_OF
from harness.study import run_sweep
from tests.backends.fake_api import FakeAPI, payload
from tests.backends.test_openai_ft import JOBS, api_env, child_runs, make_config, use_fake

__all__ = ["api_env"]  # the autouse fixture that puts a key in the environment


def out_of_quota(fake: FakeAPI) -> FakeAPI:
    """The account runs dry when the next job is created (and stays dry until the test clears it)."""
    fake.fail("POST", JOBS, 429, payload("error_insufficient_quota.json"), times=1000)
    return fake


def parent_run(config: StudyConfig, run_id: str) -> object:
    return MlflowClient(config.mlflow.tracking_uri).get_run(run_id)


def test_a_quota_stop_fails_the_sweep_and_its_trial_runs_again_on_resume(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = out_of_quota(FakeAPI())
    use_fake(monkeypatch, fake)
    config = make_config(tmp_path, chat_files, n_trials=2, openai__max_concurrent_jobs=1)
    first = run_sweep(config)

    (stopped,) = first.study.trials  # the stop let no second trial start against an empty account
    assert stopped.state == TrialState.FAIL
    assert (first.outcome.kind, first.outcome.exit_code) == ("stopped", 1)
    assert "insufficient_quota" in first.outcome.reason and "rerun the same command" in first.outcome.reason
    parent = parent_run(config, first.parent_run_id)
    assert parent.info.status == "FAILED"  # not FINISHED: the study is not done
    assert parent.data.tags["harness.outcome"] == "stopped"
    (run,) = child_runs(config)
    assert run.data.tags["harness.error_code"] == "insufficient_quota"
    assert run.data.tags["harness.interrupted"] == "true"

    fake.faults.clear()  # the quota was raised
    second = run_sweep(config)

    trials = second.study.trials
    assert trials[1].user_attrs[ATTR_RETRY_OF] == 0  # queued again, first
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert len(fake.jobs) == 2  # n_trials jobs: the stopped trial did not count against them
    assert second.outcome.exit_code == 0
    assert parent_run(config, second.parent_run_id).info.status == "FINISHED"


def test_a_quota_stopped_trial_gives_back_its_budget_reservation(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = make_config(tmp_path, chat_files, search_space__epochs=3)
    one_trial = OpenAIBackend(probe).load()[1].cost_usd(3)
    config = make_config(tmp_path, chat_files, search_space__epochs=3, openai__budget_usd=one_trial * 1.5)
    fake = out_of_quota(FakeAPI())
    use_fake(monkeypatch, fake)
    assert run_sweep(config).study.trials[0].user_attrs[ATTR_COST] == 0.0  # no job: nothing spent

    fake.faults.clear()
    second = run_sweep(config)

    assert second.study.trials[-1].state == TrialState.COMPLETE  # its retry fits the budget
    assert len(fake.jobs) == 1


def write_config(tmp_path: Path, config: StudyConfig) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_sweep_exits_1_with_the_reason_while_the_quota_is_exhausted(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = out_of_quota(FakeAPI())
    use_fake(monkeypatch, fake)
    config = make_config(tmp_path, chat_files, n_trials=2)
    path = write_config(tmp_path, config)

    stopped = CliRunner().invoke(app, ["sweep", str(path)])
    assert stopped.exit_code == 1, stopped.output
    assert "no quota left" in stopped.output

    fake.faults.clear()
    resumed = CliRunner().invoke(app, ["sweep", str(path)])
    assert resumed.exit_code == 0, resumed.output
    study = optuna.load_study(study_name=config.study_name, storage=config.storage)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 2


def test_sweep_exits_1_when_every_trial_failed(
    tmp_path: Path, chat_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake(monkeypatch, FakeAPI(outcome="failed"))
    config = make_config(tmp_path, chat_files, n_trials=2)

    result = CliRunner().invoke(app, ["sweep", str(write_config(tmp_path, config))])

    assert result.exit_code == 1, result.output
    assert "every trial failed (2)" in result.output
    assert "invalid training file" in result.output.lower()
    runs = MlflowClient(config.mlflow.tracking_uri).search_runs(
        [MlflowClient(config.mlflow.tracking_uri).get_experiment_by_name(config.study_name).experiment_id],
        "tags.`harness.role` = 'parent'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]
