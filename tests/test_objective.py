import optuna
import pytest
from optuna.trial import TrialState

from harness.backends.base import TrialStopped
from harness.config import ObjectiveConfig
from harness.objective import RUN_STATUS, ObjectiveMetricMissing, objective_value, outcome_tags


def test_trial_state_maps_to_run_status() -> None:
    assert RUN_STATUS == {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}


def test_outcome_tags_explain_the_end() -> None:
    assert outcome_tags(TrialState.COMPLETE) == {"harness.trial_state": "COMPLETE"}
    pruned = outcome_tags(TrialState.PRUNED, optuna.TrialPruned("eval_loss 3.1 at step 4"))
    assert pruned["pruned"] == "true" and "step 4" in pruned["harness.pruned_reason"]
    failed = outcome_tags(TrialState.FAIL, RuntimeError("CUDA out of memory"))
    assert failed["harness.error_class"] == "RuntimeError"
    assert failed["harness.error"] == "CUDA out of memory"
    remote = outcome_tags(TrialState.FAIL, TrialStopped("bad file", code="invalid_training_file"))
    assert remote["harness.error_code"] == "invalid_training_file"


def test_objective_value_picks_the_metric() -> None:
    assert objective_value(ObjectiveConfig(metric="eval_loss"), {"eval_loss": 1.5, "x": 2}) == 1.5
    with pytest.raises(ObjectiveMetricMissing, match="eval_loss"):
        objective_value(ObjectiveConfig(metric="eval_loss"), {"train_loss_mean": 1.0})
