"""The sweep loop: one worker joins (or creates) the study and runs trials until it is done."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness import backends
from harness.backends.protocol import Backend
from harness.config import ConfigError, StudyConfig
from harness.data.chat import DataError, Example
from harness.data.split import load_splits
from harness.evaluation.checked import unchecked_objective
from harness.evaluation.checkpoint_scores import checkpoint_scorer
from harness.evaluation.evaluator import Evaluator, open_evaluator
from harness.evaluation.evaluator import check as check_evaluation
from harness.evaluation.judge_check import CheckResult
from harness.evaluation.tables import load_rows
from harness.lifecycle.lineage import resolve_base
from harness.lifecycle.registry import register_best
from harness.lifecycle.retention import apply_retention
from harness.storage import ATTR_RUN_ID
from harness.study import confirm, report
from harness.study.confirm import enqueue_repeats
from harness.study.coordination import study_lock
from harness.study.journal import fail_orphans, sole_worker
from harness.study.judge_gate import judge_gate, log_judge_check, unchecked_judge_tags
from harness.study.outcome import Outcome, first_of_sweep, outcome_tags, recorded_outcome, sweep_outcome
from harness.study.resume import open_study, recover, running_elsewhere, trials_done
from harness.study.sampling import enqueue_warm_starts
from harness.study.trial import TrialRunner
from harness.tracking import (
    BASELINE_ROLE,
    TAG_BASE_MODEL,
    TAG_EVAL_DIGEST,
    TAG_ROLE,
    TAG_SWEEP_FIRST,
    Tracker,
    flatten,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    ran: int
    reconciled: list[int]
    outcome: Outcome  # what the exit status says (harness.study.outcome)


def parent_tags(config: StudyConfig, dataset: dict[str, Any]) -> dict[str, str]:
    return {
        "harness.backend": config.backend,
        "harness.base_model": config.base_model,
        "harness.dataset_digest": str(dataset.get("dataset_digest", "")),
    }


def run_sweep(config: StudyConfig, progress: Any = None, max_trials: int | None = None) -> SweepResult:
    """Validate everything, join (or create) the study and run trials until it has n_trials.

    Any number of workers may run this at once on one study: creating the study, the experiment
    and the parent run, the baseline and registration each happen once, under the storage's lock.
    ``max_trials`` caps this worker's own trials. The parent run ends truthfully: RUNNING while any
    worker still runs a trial, else the outcome of the whole sweep (every worker's trials). A
    journal-file study, which has no heartbeats, takes one worker at a time (harness.study.journal).
    """
    with sole_worker(config):  # a second worker of a journal study is refused here
        return _join_and_work(config, progress, max_trials)


@dataclass(frozen=True)
class _Prepared:
    """What a worker checked and read before any run or trial exists."""

    backend: Backend
    tags: dict[str, str]  # lineage tags and an unchecked judge's tag: on the parent and every trial
    dataset: dict[str, Any]
    train: list[Example]
    heldout: list[Example]


def _prepare(config: StudyConfig) -> _Prepared:
    """The backend, its data and the evaluation, checked: bad input raises here, before any run."""
    base = resolve_base(config)  # a base_model that is a tracked fine-tune: pinned and local, once
    backend = backends.create(base.config)
    dataset = backend.prepare()  # bad data or model raise here, before any run or trial exists
    train, heldout = evaluation_examples(config)
    check_evaluation(config.evaluation)
    if why := unchecked_objective(config.objective.inputs, config.evaluation, {"train": train, "heldout": heldout}):
        raise ConfigError(why)
    tags = {**parent_tags(config, dataset), **base.tags, **unchecked_judge_tags(config)}
    return _Prepared(backend, tags, dataset, train, heldout)


def _join_and_work(config: StudyConfig, progress: Any, max_trials: int | None) -> SweepResult:
    job = _prepare(config)
    with study_lock(config.storage, f"{config.study_name}:setup"):
        # Stores are created here (tables, migrations, the experiment): simultaneous first starts race.
        tracker = Tracker(config.mlflow.tracking_uri, config.study_name, config.mlflow.artifact_location)
        study = open_study(config, tracker)
        enqueue_warm_starts(config, study)
        reconciled = fail_orphans(config, study, tracker) + recover(study)
    started_before = _started(study)
    counter, mirror = job.backend.token_counter(), config.mlflow.genai_mirror
    with open_evaluator(config.evaluation, tracker, job.train, job.heldout, counter, mirror) as evaluator:
        check = judge_gate(config, evaluator, job.train)  # a weak judge in the objective stops here
        scorer = checkpoint_scorer(evaluator, config.evaluation.during_training, config.objective.inputs)
        with study_lock(config.storage, f"{config.study_name}:setup"):
            parent_id, joined = tracker.join_parent(config.study_name, job.tags)  # reopened by every worker
            first = sweep_start(study, tracker, parent_id, joined)
        tracker.set_tags(parent_id, unchecked_judge_tags(config))  # a resumed parent has its first tags
        try:  # from here on, whatever happens, the parent run ends truthfully
            with study_lock(config.storage, f"{config.study_name}:setup"):
                describe_parent(config, study, tracker, parent_id, job.dataset, check)
            if evaluator is not None and config.evaluation.baseline:
                with study_lock(config.storage, f"{config.study_name}:baseline"):  # others wait for it
                    ensure_baseline(job.backend, evaluator, tracker, parent_id, job.tags)
            runner = TrialRunner(config, job.backend, tracker, parent_id, job.tags, progress, evaluator, scorer)
            search_and_confirm(study, runner, config, max_trials, progress)
        except BaseException as error:
            with study_lock(config.storage, f"{config.study_name}:setup"):
                status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
                close_parent(config, study, tracker, parent_id, status)
            raise
        baseline_rows = evaluator.baseline_rows if evaluator is not None else None
        outcome = conclude_and_close(config, study, tracker, parent_id, first, baseline_rows)
    return SweepResult(study, parent_id, _started(study) - started_before, reconciled, outcome)


def search_and_confirm(
    study: optuna.Study, runner: TrialRunner, config: StudyConfig, max_trials: int | None, progress: Any
) -> None:
    """The search's trials; then, with ``confirm:``, the repeats of its best configurations."""
    work_until_done(study, runner, config, max_trials, progress)
    if config.confirm is not None:  # the search is over: its best configurations again
        enqueue_repeats(config, study)
        work_until_done(study, runner, config, max_trials, progress, phase="confirm")


def sweep_start(study: optuna.Study, tracker: Tracker, parent_id: str, joined: bool) -> int:
    """The number of the sweep's first trial, one for all its workers (under the setup lock).

    The worker that opens the sweep (the parent run was not running) records it on the parent run;
    workers that join the running sweep read it, so each judges the whole sweep, not its own trials.
    """
    recorded = tracker.client.get_run(parent_id).data.tags.get(TAG_SWEEP_FIRST, "")
    if joined and recorded.isdigit():
        return int(recorded)
    first = first_of_sweep(study.get_trials(deepcopy=False))
    tracker.set_tags(parent_id, {TAG_SWEEP_FIRST: str(first)})
    return first


def conclude_and_close(
    config: StudyConfig,
    study: optuna.Study,
    tracker: Tracker,
    parent_id: str,
    first: int,
    baseline_rows: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Outcome:
    """The sweep's outcome, kept on the parent run with its reason; then the parent run's end.

    Both under the setup lock: a worker's verdict and the end it gives the parent run are never
    split by another worker's, so the last worker out ends it with the verdict on every trial.
    """
    with study_lock(config.storage, f"{config.study_name}:setup"):
        status = "FAILED"
        try:
            outcome = conclude(study, tracker, parent_id, first)
            status = outcome.parent_status
        finally:
            close_parent(config, study, tracker, parent_id, status, baseline_rows)
    return outcome


def conclude(study: optuna.Study, tracker: Tracker, parent_id: str, first: int) -> Outcome:
    """The sweep's outcome from its trials (every worker's), kept on the parent run with its reason."""
    previous = recorded_outcome(tracker.client.get_run(parent_id).data.tags)
    outcome = sweep_outcome(study.get_trials(deepcopy=False), first, previous)
    tracker.set_tags(parent_id, outcome_tags(outcome))
    return outcome


def describe_parent(
    config: StudyConfig,
    study: optuna.Study,
    tracker: Tracker,
    parent_id: str,
    dataset: dict[str, Any],
    check: CheckResult | None,
) -> None:
    """Link the study to its parent run; config and data facts once, the judge check each time."""
    study.set_user_attr(ATTR_RUN_ID, parent_id)
    _describe_parent(tracker, parent_id, config, dataset)
    if check is not None:
        log_judge_check(tracker, parent_id, config, check)


def close_parent(
    config: StudyConfig,
    study: optuna.Study,
    tracker: Tracker,
    parent_id: str,
    status: str,
    baseline_rows: Mapping[str, list[dict[str, Any]]] | None = None,
) -> None:
    """Summarise; the last worker out concludes the confirmation (which names the best
    configuration), registers the best model, applies retention, ends the parent run."""
    others_running = running_elsewhere(study)
    try:
        last_out = not others_running and status == "FINISHED"
        if last_out and config.confirm is not None:
            confirm.conclude(config, study, tracker, parent_id, baseline_rows)
        report.summarise(study, tracker, parent_id, config.objective)
        if not last_out:
            return  # another worker is mid-trial: the parent run is still running, truthfully
        if config.mlflow.register_best:
            register_best(config, study)
        training = config.local_training
        if training is not None and training.keep_local is not None:  # after registration: versions keep theirs
            tracker.log_metrics(parent_id, {"local_weights_freed_mb": apply_retention(config, study) / 2**20})
    finally:
        if not others_running:
            tracker.end(parent_id, status)


def work_until_done(
    study: optuna.Study,
    runner: TrialRunner,
    config: StudyConfig,
    max_trials: int | None,
    progress: Any,
    phase: str = "study",
) -> None:
    """Run trials while the study needs them; then wait while other workers' trials run.

    Waiting is what makes a dead worker's trial run again: it counts as running until its heartbeat
    goes stale, then it is failed and queued, and whoever is still here runs it. So the worker
    looks for dead workers' trials before it counts what is due: a retry they leave WAITING is run
    before leaving. A worker that reached ``max_trials`` or the study's timeout leaves at once.
    """
    deadline = time.monotonic() + config.timeout_minutes * 60 if config.timeout_minutes else math.inf
    callbacks: list[Any] = [stop_when_done(config.n_trials)] if config.n_trials is not None else []
    if progress is not None:
        total = trial_budget(config, study, max_trials)
        callbacks.append(report.progress_callback(progress, total, phase))
    while (left := deadline - time.monotonic()) > 0:
        others_running = running_elsewhere(study)  # fails (and queues again) dead workers' trials first
        own_left = None if max_trials is None else max_trials - runner.started
        budget = trial_budget(config, study, own_left)  # None: no cap but the timeout
        if budget is None or budget > 0:
            before = runner.started
            if _optimize(study, runner, config, budget, None if math.isinf(left) else left, callbacks):
                continue  # a peer failed this worker's live trial: its retry is due, so look again
            if runner.stopped_study:
                return  # a trial stopped the study (an exhausted quota, a budget): no trial may start
            if budget is None or (runner.started - before < budget and trial_budget(config, study, None)):
                return  # ran until the timeout, or stopped while trials were still due (a finished grid)
        elif own_left == 0 or config.n_trials is None or not others_running:
            return
        else:
            time.sleep(config.workers.heartbeat_interval_s)


def trial_budget(config: StudyConfig, study: optuna.Study, max_trials: int | None) -> int | None:
    """How many trials this worker may start: what the study still needs, capped by max_trials.

    Queued trials (retries of dead or interrupted workers' trials) are always due, even past
    n_trials: workers that started trials at the same instant may have overshot it by one.
    """
    remaining = None if config.n_trials is None else max(config.n_trials - trials_done(study), _queued(study))
    if max_trials is None:
        return remaining
    return max_trials if remaining is None else min(remaining, max_trials)


def _describe_parent(tracker: Tracker, parent_id: str, config: StudyConfig, dataset: dict[str, Any]) -> None:
    """Config and dataset facts on the parent run, once: params cannot change on resume.

    Passwords in URLs (storage, tracking URI) are masked: MLflow shows them to every reader.
    """
    from harness.redaction import masked

    if tracker.client.get_run(parent_id).data.params:
        return
    recorded = masked(config.model_dump(mode="json"))
    tracker.log_params(parent_id, {**dict(flatten("", recorded)), **{f"data.{k}": v for k, v in dataset.items()}})
    tracker.log_dict(parent_id, recorded, "config.json")


def _optimize(
    study: optuna.Study,
    runner: TrialRunner,
    config: StudyConfig,
    n_trials: int | None,
    timeout_s: float | None,
    callbacks: list[Any],
) -> bool:
    """Run trials; True when one of them was lost to a peer (failed as stale while it ran)."""
    # Remote jobs train elsewhere, so several can be in flight; local trials share one model.
    n_jobs = min(config.parallel_trials, n_trials or config.parallel_trials)
    try:
        study.optimize(
            runner, n_trials=n_trials, timeout=timeout_s, catch=(Exception,), callbacks=callbacks, n_jobs=n_jobs
        )
    except ValueError:  # Optuna's "Cannot tell a FAIL trial": a peer failed ours as stale meanwhile
        if not runner.lost_to_peer(study):
            raise
        log.warning("trial %s was failed by another worker while it ran; its retry runs instead", runner.current)
        return True
    return False


def stop_when_done(n_trials: int) -> Any:
    """Stop this worker once the study (all workers together) has its n_trials and none queued."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if trials_done(study) >= n_trials and not _queued(study):
            study.stop()

    return callback


def _queued(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def evaluation_examples(config: StudyConfig) -> tuple[list[Example], list[Example]]:
    """The chat examples evaluation samples from (preference pairs: prompt and preferred answer).

    A local backend's ``prepare`` has read the data with these same readers, so only a remote
    study gets here with data they refuse (the service takes chat features they do not read).
    """
    if not config.evaluation.enabled:
        return [], []
    try:
        return load_splits(config.data, config.system_prompt)
    except DataError:
        log.warning("evaluation skipped: the training data is not chat data")
        return [], []


def ensure_baseline(
    backend: Backend, evaluator: Evaluator, tracker: Tracker, parent_id: str, tags: dict[str, str]
) -> None:
    """Evaluate the untuned base model once per study, as the child run ``baseline``.

    A baseline of this evaluation that finished earlier is reused (its rows are what trials are
    compared with); one that failed, was killed or was measured differently is done again. Run
    under the study's baseline lock.
    """
    base_answerer = backend.base_answerer()
    if base_answerer is None:
        return
    query = f"tags.`{TAG_ROLE}` = '{BASELINE_ROLE}' and tags.`{TAG_EVAL_DIGEST}` = '{evaluator.digest}'"
    for run in tracker.find_runs(f"{query} and attributes.status = 'FINISHED'"):
        if run.data.tags.get(TAG_BASE_MODEL) != tags.get(TAG_BASE_MODEL):
            continue  # another base under the same study name: its answers are not this base's
        rows = {split: load_rows(tracker.client, run.info.run_id, split) for split in evaluator.splits}
        if all(r is not None for r in rows.values()):
            evaluator.baseline_rows = {k: v for k, v in rows.items() if v is not None}
            return
    # Callers hold the study's baseline lock, so a baseline still RUNNING died with its worker.
    for dead in tracker.find_runs(f"tags.`{TAG_ROLE}` = '{BASELINE_ROLE}' and attributes.status = 'RUNNING'"):
        tracker.set_tags(dead.info.run_id, {"harness.error": "its worker died mid-evaluation; done again"})
        tracker.end(dead.info.run_id, "FAILED")
    run_id = tracker.child_run(parent_id, BASELINE_ROLE, {**tags, TAG_ROLE: BASELINE_ROLE})
    with tracker.closing(run_id):
        metrics = evaluator.evaluate(base_answerer, run_id)
        metrics |= backend.baseline_metrics()  # eval_loss: the before-picture of the loss too
        tracker.log_metrics(run_id, metrics)
        evaluator.baseline_rows = dict(evaluator.last_rows)


def _started(study: optuna.Study) -> int:
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
