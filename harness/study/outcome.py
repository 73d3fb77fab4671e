"""How a sweep ended, read from its study's trials: exit status, reason, the parent run's status.

One pure function decides it, so ``harness sweep``, ``harness worker`` and the parent run agree:

- a trial stopped the study and will run again on resume (an exhausted API quota, a long
  polling outage): exit 1 with its reason; the parent run is FAILED, not FINISHED;
- the sweep's trials all failed (none completed or was pruned): exit 1 with the first failure's
  error class and message; the parent run is FAILED;
- otherwise exit 0.

Every worker of a sweep judges the same trials, from the sweep's first one on (recorded on the parent
run by the worker that opened the sweep), not the trials it ran itself; and a sweep that ran no trial
leaves a failure recorded before it standing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from optuna.trial import FrozenTrial, TrialState

from harness.redaction import mask_url
from harness.storage import ATTR_INTERRUPTED, ATTR_RETRY_OF
from harness.study.resume import retry_of
from harness.tracking import TAG_OUTCOME, TAG_OUTCOME_REASON

# Trial user attrs that say why a trial ended (its MLflow run has the same as tags).
ATTR_ERROR = "harness.error"  # "<error class>: <message>" of a failed trial
ATTR_STOPPED = "harness.stopped_study"  # set when the trial's failure stopped the whole study
_ERROR_CHARS = 1000

OutcomeKind = Literal["done", "stopped", "failed"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    reason: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.kind == "done" else 1

    @property
    def parent_status(self) -> str:
        """The parent run's end status: it never claims more than the study achieved."""
        return "FINISHED" if self.kind == "done" else "FAILED"


def failure_attrs(error: BaseException, stops_study: bool) -> dict[str, object]:
    """Pure: what a failed trial keeps as user attrs, for ``sweep_outcome`` to explain the end."""
    # A database error may quote its URL: the password never reaches the study's storage.
    attrs: dict[str, object] = {ATTR_ERROR: mask_url(f"{type(error).__name__}: {error}")[:_ERROR_CHARS]}
    if stops_study:
        attrs[ATTR_STOPPED] = True
    return attrs


def sweep_outcome(trials: Sequence[FrozenTrial], first_number: int = 0, previous: Outcome | None = None) -> Outcome:
    """Pure: the outcome of a sweep that started when the study had ``first_number`` trials.

    ``previous`` is the outcome recorded before (:func:`recorded_outcome`): a sweep with no trial of
    its own (a worker that joined after the others ran every trial, a rerun of a finished study)
    changes nothing, so a failed study stays failed."""
    retried = {t.user_attrs.get(ATTR_RETRY_OF) for t in trials} | {retry_of(t) for t in trials}
    pending = [
        t
        for t in trials
        if t.state == TrialState.FAIL and t.user_attrs.get(ATTR_INTERRUPTED) and t.number not in retried
    ]
    if stopping := [t for t in pending if t.user_attrs.get(ATTR_STOPPED)]:
        first = stopping[0]
        return Outcome(
            "stopped",
            f"trial {first.number} stopped the study: {_error(first)}. {len(pending)} trial(s) will run again"
            " when the study resumes: rerun the same command once the cause is fixed",
        )
    ours = [t for t in trials if t.number >= first_number]
    if not ours and previous is not None and previous.kind == "failed":
        return previous
    if any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in ours):
        return Outcome("done")  # other workers are still at it: they report the end
    failed = [t for t in ours if t.state == TrialState.FAIL and t.number not in retried]
    if failed and not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in ours):
        first = failed[0]
        return Outcome(
            "failed", f"every trial failed ({len(failed)}); the first, trial {first.number}: {_error(first)}"
        )
    return Outcome("done")


def recorded_outcome(tags: Mapping[str, str]) -> Outcome | None:
    """Pure: the outcome a parent run's tags record, if any."""
    kind = tags.get(TAG_OUTCOME)
    known = [k for k in get_args(OutcomeKind) if k == kind]
    return Outcome(known[0], tags.get(TAG_OUTCOME_REASON, "")) if known else None


def outcome_tags(outcome: Outcome) -> dict[str, str]:
    """Pure: the parent run's tags that record ``outcome`` (the reason cut to what a tag holds)."""
    return {TAG_OUTCOME: outcome.kind, TAG_OUTCOME_REASON: outcome.reason[:5000]}


def first_of_sweep(trials: Sequence[FrozenTrial]) -> int:
    """Pure: the number of the first trial a sweep starting now may run (queued ones run first)."""
    return min((t.number for t in trials if t.state == TrialState.WAITING), default=len(trials))


def _error(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(ATTR_ERROR) or "no error recorded (its worker died mid-trial)")
