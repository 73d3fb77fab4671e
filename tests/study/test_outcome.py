"""How a sweep ended, from its trials alone: the exit status and the reason the user reads."""

from __future__ import annotations

from typing import Any

from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from harness.backends.protocol import TrialStopped
from harness.storage import ATTR_INTERRUPTED, ATTR_RETRY_OF
from harness.study.outcome import (
    Outcome,
    failure_attrs,
    first_of_sweep,
    outcome_tags,
    recorded_outcome,
    sweep_outcome,
)

QUOTA = TrialStopped("the API account has no quota left", stop_study=True, resumable=True)


def trial(number: int, state: TrialState, **attrs: Any) -> FrozenTrial:
    made = create_trial(
        state=state,
        value=1.0 if state == TrialState.COMPLETE else None,
        params={"epochs": 1},
        distributions={"epochs": IntDistribution(1, 3)},
        user_attrs=attrs,
    )
    made.number = number
    return made


def failed(number: int, error: BaseException, stops_study: bool = False, **attrs: Any) -> FrozenTrial:
    return trial(number, TrialState.FAIL, **failure_attrs(error, stops_study), **attrs)


def test_a_sweep_with_a_completed_trial_is_done() -> None:
    trials = [failed(0, TypeError("boom")), trial(1, TrialState.COMPLETE)]
    assert sweep_outcome(trials) == Outcome("done")
    assert Outcome("done").exit_code == 0 and Outcome("done").parent_status == "FINISHED"


def test_every_trial_failed_exits_1_with_the_first_error() -> None:
    error = TypeError("dict() got multiple values for keyword argument 'seed'")
    outcome = sweep_outcome([failed(0, error), failed(1, ValueError("other"))])
    assert (outcome.kind, outcome.exit_code, outcome.parent_status) == ("failed", 1, "FAILED")
    assert "every trial failed (2)" in outcome.reason
    assert "trial 0: TypeError: dict() got multiple values for keyword argument 'seed'" in outcome.reason


def test_only_the_sweeps_own_trials_count() -> None:
    earlier = trial(0, TrialState.COMPLETE)
    assert sweep_outcome([earlier, failed(1, OSError("disk full"))], first_number=1).kind == "failed"
    assert sweep_outcome([earlier], first_number=1).kind == "done"  # nothing left to run


def test_trials_still_running_elsewhere_leave_the_verdict_to_their_workers() -> None:
    assert sweep_outcome([failed(0, TypeError("x")), trial(1, TrialState.RUNNING)]).kind == "done"


def test_a_stale_trials_retry_replaces_it() -> None:
    trials = [failed(0, RuntimeError("worker died")), trial(1, TrialState.COMPLETE, **{ATTR_RETRY_OF: 0})]
    assert sweep_outcome(trials).kind == "done"


def test_a_study_stopped_for_a_resumable_reason_exits_1_and_says_how_to_go_on() -> None:
    stopped = failed(1, QUOTA, stops_study=True, **{ATTR_INTERRUPTED: True})
    outcome = sweep_outcome([trial(0, TrialState.COMPLETE), stopped])
    assert (outcome.kind, outcome.exit_code, outcome.parent_status) == ("stopped", 1, "FAILED")
    assert "trial 1 stopped the study: TrialStopped: the API account has no quota left" in outcome.reason
    assert "rerun the same command" in outcome.reason


def test_once_its_trial_is_queued_again_the_stop_is_history() -> None:
    stopped = failed(0, QUOTA, stops_study=True, **{ATTR_INTERRUPTED: True})
    retry = trial(1, TrialState.COMPLETE, **{ATTR_RETRY_OF: 0})
    assert sweep_outcome([stopped, retry], first_number=1).kind == "done"


def test_a_sweep_starts_at_the_first_queued_trial() -> None:
    queued = trial(3, TrialState.WAITING, **{ATTR_RETRY_OF: 1})
    assert first_of_sweep([trial(0, TrialState.COMPLETE), failed(1, QUOTA), trial(2, TrialState.COMPLETE), queued]) == 3
    assert first_of_sweep([trial(0, TrialState.COMPLETE)]) == 1
    assert first_of_sweep([]) == 0


def test_a_password_in_an_error_is_never_kept() -> None:
    attrs = failure_attrs(OSError("cannot reach postgresql://postgres:hunter2@db/optuna"), stops_study=False)
    assert "hunter2" not in str(attrs) and "postgresql://postgres:***@db/optuna" in str(attrs)


def test_a_sweep_that_ran_no_trial_leaves_a_recorded_failure_standing() -> None:
    every = [failed(0, OSError("disk full")), failed(1, OSError("disk full"))]
    recorded = recorded_outcome(outcome_tags(sweep_outcome(every)))
    assert recorded is not None and recorded.kind == "failed" and "disk full" in recorded.reason
    assert sweep_outcome(every, first_number=2, previous=recorded) == recorded
    assert sweep_outcome(every, first_number=2, previous=Outcome("done")).kind == "done"
    assert recorded_outcome({}) is None and recorded_outcome({"harness.outcome": "odd"}) is None
