"""Optuna study construction, resume and reconciliation, and the sweep loop."""

from __future__ import annotations

import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from harness import backends, report
from harness.config import ConfigError, PrunerConfig, SamplerConfig, StudyConfig
from harness.data.chat import DataError, Example, load_splits
from harness.evaluation.judge_check import CheckResult, check_judge, mentions_judge
from harness.evaluation.tables import load_rows
from harness.evaluation.trial import TAG_EVAL_DIGEST, Evaluator, open_evaluator
from harness.evaluation.trial import check as check_evaluation
from harness.objective import ATTR_HOST, ATTR_INTERRUPTED, ATTR_PID, ATTR_RUN_ID, TrialRunner
from harness.tracking import TAG_ROLE, Tracker, flatten

log = logging.getLogger(__name__)
BASELINE_ROLE = "baseline"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ATTR_RETRY_OF = "harness.retry_of"


def make_sampler(config: SamplerConfig) -> optuna.samplers.BaseSampler:
    if config.type == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.type == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=config.seed, n_startup_trials=config.n_startup_trials)
    if config.type == "grid":
        return optuna.samplers.BruteForceSampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=config.n_startup_trials)


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    if config.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=config.min_resource)
    if config.type == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps)


def make_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    if url.startswith(("postgresql", "mysql")):
        # Many workers on many machines: heartbeats let a dead worker's trial be failed and retried.
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=60,
            grace_period=180,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
        )
    if url.endswith(".log"):
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    return optuna.storages.RDBStorage(url)


def open_study(config: StudyConfig) -> optuna.Study:
    """Create the study or load it under the same name: resuming never reruns finished trials."""
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage),
        sampler=make_sampler(config.sampler),
        pruner=make_pruner(config.pruner),
        directions=config.objective.directions,
        load_if_exists=True,
    )
    if study.metric_names != config.objective.names:
        # optuna-dashboard, which opens the same storage, shows these instead of "Objective 0".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(config.objective.names)
    return study


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphaned(trial: FrozenTrial) -> bool:
    """A RUNNING trial whose process, on this host, is gone (killed, crashed, powered off)."""
    attrs = trial.user_attrs
    if trial.state != TrialState.RUNNING or attrs.get(ATTR_HOST) != socket.gethostname():
        return False
    pid = attrs.get(ATTR_PID)
    return isinstance(pid, int) and pid != os.getpid() and not _process_alive(pid)


def reconcile(study: optuna.Study, tracker: Tracker) -> list[int]:
    """Fail trials (and runs) whose process died; queue every interrupted trial's params again.

    User attrs under ``resume.`` (a remote job id, say) travel to the retry, so a backend can
    reattach to work already paid for instead of starting it again.
    """
    storage = study._storage
    for trial in (t for t in study.get_trials(deepcopy=False) if is_orphaned(t)):
        storage.set_trial_user_attr(trial._trial_id, ATTR_INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        run_id = trial.user_attrs.get(ATTR_RUN_ID)
        if run_id and tracker.status(run_id) == "RUNNING":
            reason = f"process {trial.user_attrs.get(ATTR_PID)} died mid-trial"
            tracker.set_tags(run_id, {"harness.trial_state": "FAIL", "harness.error": reason})
            tracker.end(run_id, "FAILED")
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(ATTR_RETRY_OF) for t in trials}
    requeued = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.FAIL or not attrs.get(ATTR_INTERRUPTED) or trial.number in retried:
            continue
        carried = {k: v for k, v in attrs.items() if k.startswith("resume.")}
        study.enqueue_trial(trial.params, user_attrs={ATTR_RETRY_OF: trial.number, **carried})
        requeued.append(trial.number)
    return requeued


def trials_done(study: optuna.Study) -> int:
    """Finished trials that count against n_trials: interrupted ones will run again."""
    return sum(
        t.state in FINISHED or (t.state == TrialState.FAIL and not t.user_attrs.get(ATTR_INTERRUPTED))
        for t in study.get_trials(deepcopy=False)
    )


@dataclass(frozen=True)
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    ran: int
    reconciled: list[int]


def parent_tags(config: StudyConfig, dataset: dict[str, Any]) -> dict[str, str]:
    return {
        "harness.backend": config.backend,
        "harness.base_model": config.base_model,
        "harness.dataset_digest": str(dataset.get("dataset_digest", "")),
    }


class WeakJudgeError(ConfigError):
    """The objective reads a judge that ranks controlled variants too poorly to be trusted."""


def run_sweep(config: StudyConfig, progress: Any = None) -> SweepResult:
    """Validate everything, then run the remaining trials; the parent run ends truthfully."""
    backend = backends.create(config)
    dataset = backend.prepare()  # bad data or model raise here, before any run or trial exists
    train, heldout = evaluation_examples(config)
    check_evaluation(config.evaluation)
    study = open_study(config)
    tracker = Tracker(config.mlflow.tracking_uri, config.study_name, config.mlflow.artifact_location)
    reconciled = reconcile(study, tracker)
    tags = parent_tags(config, dataset)
    started_before = _started(study)
    count_tokens = getattr(backend, "count_tokens", None)
    with open_evaluator(config.evaluation, tracker, train, heldout, count_tokens) as evaluator:
        check = judge_gate(config, evaluator, train)  # a weak judge in the objective stops here
        parent_id = tracker.parent_run(config.study_name, tags)
        status = "FAILED"
        try:
            study.set_user_attr(ATTR_RUN_ID, parent_id)
            _describe_parent(tracker, parent_id, config, dataset)
            if check is not None:
                log_judge_check(tracker, parent_id, config, check)
            if evaluator is not None and config.evaluation.baseline:
                ensure_baseline(backend, evaluator, tracker, parent_id, tags)
            runner = TrialRunner(config, backend, tracker, parent_id, tags, progress, evaluator)
            remaining = max(0, (config.n_trials or 10**9) - trials_done(study))
            if remaining:
                _optimize(study, runner, config, remaining, progress)
            if config.mlflow.register_best:
                from harness.registry import register_best

                register_best(config, study)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            try:
                report.summarise(study, tracker, parent_id, config.objective)
            finally:
                tracker.end(parent_id, status)
    return SweepResult(study, parent_id, _started(study) - started_before, reconciled)


def judge_gate(config: StudyConfig, evaluator: Evaluator | None, train: list[Example]) -> CheckResult | None:
    """Check the judge once per study (cached); refuse a weak judge in the objective."""
    settings = config.evaluation.judge
    if evaluator is None or evaluator.judge is None or not settings.check:
        return None
    result, was_cached = check_judge(evaluator.judge, train, settings.check_size, config.evaluation.sample_seed)
    evaluator.skip_judge_counts()
    log.info("judge check %s: overall accuracy %.2f", "(cached)" if was_cached else "", result.accuracy)
    weak = result.accuracy < settings.min_check_accuracy
    if weak and mentions_judge(config.objective.inputs) and not settings.allow_weak:
        raise WeakJudgeError(
            f"evaluation.judge: {settings.kind}:{settings.model} ranks controlled variants of the training"
            f" answers right {result.accuracy:.0%} of the time, below judge.min_check_accuracy"
            f" {settings.min_check_accuracy:.0%}, and the objective {config.objective.inputs} reads it."
            " See `harness judge-check CONFIG`; use a stronger judge, take the judge out of the objective,"
            " or pass --allow-weak-judge"
        )
    if weak:
        log.warning("the judge is weak (accuracy %.2f): reported, not trusted", result.accuracy)
    return result


def log_judge_check(tracker: Tracker, parent_id: str, config: StudyConfig, check: CheckResult) -> None:
    """The judge's check on the parent run: metrics, a table of every pair, and a weak-judge tag."""
    tracker.log_metrics(parent_id, check.metrics())
    tracker.log_table(parent_id, check.rows, "judge_check.json")
    weak = check.accuracy < config.evaluation.judge.min_check_accuracy
    tracker.set_tags(
        parent_id, {"harness.judge_check_accuracy": f"{check.accuracy:.3f}", "harness.judge_weak": str(weak).lower()}
    )


def _describe_parent(tracker: Tracker, parent_id: str, config: StudyConfig, dataset: dict[str, Any]) -> None:
    """Config and dataset facts on the parent run, once: params cannot change on resume."""
    if tracker.client.get_run(parent_id).data.params:
        return
    config_params = dict(flatten("", config.model_dump(mode="json")))
    tracker.log_params(parent_id, {**config_params, **{f"data.{k}": v for k, v in dataset.items()}})
    tracker.log_dict(parent_id, config.model_dump(mode="json"), "config.json")


def _optimize(study: optuna.Study, runner: TrialRunner, config: StudyConfig, n_trials: int, progress: Any) -> None:
    timeout = config.timeout_minutes * 60 if config.timeout_minutes else None
    callbacks = [report.progress_callback(progress, n_trials)] if progress else []
    # Remote jobs train elsewhere, so several can be in flight; local trials share one model.
    n_jobs = min(config.parallel_trials, n_trials)
    study.optimize(runner, n_trials=n_trials, timeout=timeout, catch=(Exception,), callbacks=callbacks, n_jobs=n_jobs)


def evaluation_examples(config: StudyConfig) -> tuple[list[Example], list[Example]]:
    """The chat examples evaluation samples from; none for preference (DPO) data."""
    if not config.evaluation.enabled:
        return [], []
    try:
        return load_splits(config.data, config.system_prompt)
    except DataError:
        if config.backend == "local":
            raise
        log.warning("evaluation skipped: the training data is not chat data")
        return [], []


def ensure_baseline(backend: Any, evaluator: Evaluator, tracker: Tracker, parent_id: str, tags: dict[str, str]) -> None:
    """Evaluate the untuned base model once per study, as the child run ``baseline``.

    A baseline of this evaluation that finished earlier is reused (its rows are what trials are
    compared with); one that failed, was killed or was measured differently is done again.
    """
    base_answerer = getattr(backend, "base_answerer", None)
    if base_answerer is None:
        return
    query = f"tags.`{TAG_ROLE}` = '{BASELINE_ROLE}' and tags.`{TAG_EVAL_DIGEST}` = '{evaluator.digest}'"
    for run in tracker.find_runs(f"{query} and attributes.status = 'FINISHED'", max_results=1):
        rows = {split: load_rows(tracker.client, run.info.run_id, split) for split in evaluator.splits}
        if all(r is not None for r in rows.values()):
            evaluator.baseline_rows = {k: v for k, v in rows.items() if v is not None}
            return
    run_id = tracker.child_run(parent_id, BASELINE_ROLE, {**tags, TAG_ROLE: BASELINE_ROLE})
    with tracker.closing(run_id):
        metrics = evaluator.evaluate(base_answerer(), run_id)
        baseline_metrics = getattr(backend, "baseline_metrics", None)
        if baseline_metrics is not None:
            metrics |= baseline_metrics()  # eval_loss: the before-picture of the loss too
        tracker.log_metrics(run_id, metrics)
        evaluator.baseline_rows = dict(evaluator.last_rows)


def _started(study: optuna.Study) -> int:
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
