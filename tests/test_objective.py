import optuna
import pytest
from optuna.trial import TrialState

from harness.backends.protocol import TrialStopped
from harness.config import ObjectiveConfig
from harness.objective import ObjectiveMetricMissing, objective_metrics, objective_value
from harness.study.trial import RUN_STATUS, outcome_tags, reporter


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


def test_composite_and_multi_objectives() -> None:
    metrics = {"eval_loss": 2.0, "consistency/heldout/embedding": 0.6, "consistency/heldout/judge": 50.0}
    composite = ObjectiveConfig(weights={"consistency/heldout/embedding": 1.0, "eval_loss": -0.1}, direction="maximize")
    assert objective_value(composite, metrics) == pytest.approx(0.4)
    assert objective_metrics(composite, 0.4) == {"objective": 0.4}
    multi = ObjectiveConfig(
        metrics=[{"metric": "eval_loss"}, {"metric": "consistency/heldout/judge", "direction": "maximize"}]
    )
    assert multi.directions == ["minimize", "maximize"]
    value = objective_value(multi, metrics)
    assert value == [2.0, 50.0]
    assert objective_metrics(multi, value) == {"objective/eval_loss": 2.0, "objective/consistency/heldout/judge": 50.0}
    with pytest.raises(ValueError, match="not both"):
        ObjectiveConfig(weights={"eval_loss": 1.0}, metrics=[{"metric": "a"}, {"metric": "b"}])


def test_pruning_reports_eval_loss_signed_for_the_study_direction() -> None:
    reported = {}
    for direction in ("minimize", "maximize"):
        study = optuna.create_study(direction=direction, pruner=optuna.pruners.NopPruner())
        trial = study.ask()
        reporter(trial, ObjectiveConfig(weights={"x": 1.0}, direction=direction))(1.5, 3)
        reported[direction] = study._storage.get_trial(trial._trial_id).intermediate_values[3]
    assert reported == {"minimize": 1.5, "maximize": -1.5}
