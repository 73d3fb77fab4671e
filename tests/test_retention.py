"""Retention of local work dirs: the plan is pure; applying it deletes and counts bytes freed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial
from pydantic import ValidationError

from harness.config import ObjectiveConfig, parse_study
from harness.lifecycle.retention import TrialDir, apply, apply_retention, plan, ranks, trial_dirs
from harness.storage import ATTR_RUN_ID


def run_id(n: int) -> str:
    return f"{n:032x}"


def trial(number: int, state: TrialState, value: float | None = None) -> Any:
    made = create_trial(
        state=state,
        values=[value] if value is not None else None,
        user_attrs={ATTR_RUN_ID: run_id(number)},
    )
    made.number = number
    return made


TRIALS = [
    trial(0, TrialState.COMPLETE, 0.5),
    trial(1, TrialState.COMPLETE, 0.2),  # best
    trial(2, TrialState.PRUNED),
    trial(3, TrialState.COMPLETE, 0.9),  # worst, registered
    trial(4, TrialState.FAIL),
    trial(5, TrialState.RUNNING),  # another worker's, still training
    trial(6, TrialState.COMPLETE, 0.3),
]
LOSS = ObjectiveConfig(metric="eval_loss")


def test_ranks_follow_the_best_trial_rule() -> None:
    assert ranks(TRIALS, LOSS) == {1: 0, 6: 1, 0: 2, 3: 3}
    assert ranks(TRIALS, ObjectiveConfig(metric="consistency/heldout/rouge_l", direction="maximize"))[3] == 0


def test_plan_keeps_the_best_k_the_registered_and_the_running() -> None:
    dirs = trial_dirs(TRIALS, LOSS, lambda rid: Path("/w") / rid)
    assert [d.rank for d in dirs] == [2, 0, None, 3, None, None, 1]
    deleted = plan(dirs, 2, registered={run_id(3)})
    assert deleted == [Path("/w") / run_id(n) for n in (0, 2, 4)]
    assert plan(dirs, 0, registered=set()) == [Path("/w") / run_id(n) for n in (0, 1, 2, 3, 4, 6)]
    assert plan(dirs, None, registered=set()) == []  # None keeps everything
    assert plan(dirs, 10, registered=set()) == [Path("/w") / run_id(n) for n in (2, 4)]


def test_only_mlflow_run_ids_become_paths() -> None:
    odd = create_trial(state=TrialState.FAIL, user_attrs={ATTR_RUN_ID: "../../home"})
    assert trial_dirs([odd], LOSS, lambda rid: Path("/w") / rid) == []


def test_apply_deletes_and_counts_bytes(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    (gone / "final").mkdir(parents=True)
    (gone / "final" / "model.safetensors").write_bytes(b"x" * 3000)
    (gone / "checkpoint-1").mkdir()
    (gone / "checkpoint-1" / "optimizer.pt").write_bytes(b"y" * 500)
    kept.mkdir()
    assert apply([gone, tmp_path / "never-there"]) == 3500
    assert not gone.exists() and kept.exists()
    assert plan([TrialDir(run_id(1), kept, None, finished=False)], 0, set()) == []


def test_apply_retention_at_the_end_of_a_study(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    config = parse_study(
        {
            "study_name": "s",
            "data": {"train_file": "x.jsonl"},
            "mlflow": {"tracking_uri": uri},
            "training": {"work_dir": str(tmp_path / "work"), "keep_local": 1},
        }
    )
    study = optuna.create_study()
    study.add_trials(TRIALS)
    for t in study.get_trials():
        rid = t.user_attrs[ATTR_RUN_ID]
        config.training.run_dir("s", rid).mkdir(parents=True)
        (config.training.run_dir("s", rid) / "w.bin").write_bytes(b"z" * 100)
    client = MlflowClient(uri)
    client.create_registered_model("s")
    client.create_model_version("s", "file:///nowhere", run_id=run_id(3))

    assert apply_retention(config, study) == 400  # trials 0, 2, 4 and 6
    left = sorted(p.name for p in (tmp_path / "work" / "s").iterdir())
    assert left == [run_id(1), run_id(3), run_id(5)]  # the best, the registered, the running
    assert apply_retention(config, study) == 0
    keep_all = config.model_copy(update={"training": config.training.model_copy(update={"keep_local": None})})
    assert apply_retention(keep_all, study) == 0


@pytest.mark.parametrize("bad", [{"keep_local": -1}, {"log_full_weights": "sometimes"}])
def test_weight_settings_are_checked_at_load(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_study({"study_name": "s", "data": {"train_file": "x.jsonl"}, "training": bad})
    defaults = parse_study({"study_name": "s", "data": {"train_file": "x.jsonl"}}).training
    assert (defaults.log_full_weights, defaults.keep_local) == ("best", None)
