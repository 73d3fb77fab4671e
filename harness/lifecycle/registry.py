"""The MLflow Model Registry: register a trial's model, and promote it only on evidence.

Registration logs the trial's model as a pyfunc model (see :mod:`harness.serving`) *linked to the
trial's own run* (an MLflow 3 LoggedModel whose source run is the trial; the run is not reopened,
so its status and end time stay what the trial left) and creates the model version with all its
tags in the same call: a version never exists without the evidence that justified it, and its
run link points at the trial's metrics, params and answer tables. Registering a run twice returns
the existing version, unless a harness this one cannot load wrote it (:mod:`harness.lifecycle.model_format`).

Promotion compares the candidate with the alias's holder or, for the first holder, the study's
untuned baseline, on evidence read by :mod:`harness.lifecycle.evidence` (no evidence, no
promotion). It writes in an order that keeps the registry truthful if it stops half-way: compare
first (re-evaluating the champion if its scores came from another evaluation), then register and
tag the candidate, then move ``previous`` to the old champion, and move the promoted alias last.
If that last move fails, ``previous`` is put back: the champion keeps its alias and nothing claims
a promotion that did not happen. Concurrent promotions of one model take turns (a lock tag).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config import ObjectiveConfig, StudyConfig
from harness.evaluation.paired import PairedDiff
from harness.evaluation.tables import table_path
from harness.lifecycle import model_format
from harness.lifecycle.confirmed import confirmed_best, evidence_tags
from harness.lifecycle.evidence import (
    Measured,
    Opponent,
    baseline,
    champion,
    measure,
    measure_opponent,
    paired_interval,
)
from harness.lifecycle.locking import LockTimeout, promotion_lock
from harness.lifecycle.promotion import decide, per_example
from harness.lifecycle.selection import Scores, objective_scores, select_best
from harness.lifecycle.serving import log_model, tracking_uri
from harness.lifecycle.weights import trial_model
from harness.metrics import CONSISTENCY, HELDOUT, MetricName, objective_key, objective_of, try_parse
from harness.storage import ATTR_RUN_ID, make_storage
from harness.tracking import (
    LINEAGE_TAGS,
    TAG_BASE_MODEL,
    TAG_DATASET,
    TAG_EVAL_DIGEST,
    TAG_KIND,
    TAG_PROMOTION,
    TAG_RUN_ID,
    TAG_STUDY,
    TAG_TRIAL,
)

log = logging.getLogger(__name__)
# On evaluation runs of a registered model (harness eval, champion re-evaluation).
# The lineage tags (a base that is itself a fine-tune) go onto the version too.
COPIED_RUN_TAGS = (TAG_STUDY, TAG_TRIAL, TAG_BASE_MODEL, TAG_DATASET, "harness.backend", TAG_EVAL_DIGEST, *LINEAGE_TAGS)
CHAMPION = "champion"
PREVIOUS = "previous"
NOT_PROMOTED_AT_SWEEP_END = (
    "not promoted: registered at the end of the sweep; `harness promote` moves an alias only on evidence"
)


class RegistryError(RuntimeError):
    """A registration or promotion that cannot go ahead; the message says why."""


def client_for(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def version_tags(run: Any, objective: ObjectiveConfig) -> dict[str, str]:
    """What a model version records about the trial run it came from, and the harness that wrote it."""
    tags = {k: run.data.tags[k] for k in COPIED_RUN_TAGS if k in run.data.tags} | model_format.version_tags()
    tags[TAG_RUN_ID] = run.info.run_id
    tags["harness.objective_directions"] = json.dumps(dict(zip(objective.names, objective.directions, strict=True)))
    metrics = run.data.metrics
    for name, value in objective_scores(metrics, objective).items():
        tags[objective_key(name)] = f"{value:.6g}"
    for key, value in metrics.items():
        if try_parse(key) or key == "eval_loss":
            tags[key] = f"{value:.6g}"
    return tags


def find_version(client: Any, name: str, run_id: str) -> Any | None:
    """The version already registered from ``run_id`` under ``name``, if any."""
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return min(found, key=lambda v: int(v.version)) if found else None


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None  # no such model, or the alias is not set


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description="fine-tuned by harness; see version tags for evidence")
        except MlflowException:
            client.get_registered_model(name)  # another process created it meanwhile: fine; else raise


def register(config: StudyConfig, run_id: str, client: Any = None, tags: Mapping[str, str] | None = None) -> Any:
    """Log the run's model and register it under ``config.registry_name`` (with ``tags`` besides the
    run's evidence); returns the ModelVersion."""
    client = client or client_for(config.mlflow.tracking_uri)
    name = config.registry_name
    existing = find_version(client, name, run_id)
    if existing is not None and model_format.readable_tags(existing.tags):
        return existing  # else written by a harness this one cannot load: registered again
    run = client.get_run(run_id)
    # The trial's weights: its local work dir, or the copy on its run when that dir is not here.
    with trial_model(run, config, client) as (spec, weights), tracking_uri(config.mlflow.tracking_uri):
        tags = {**version_tags(run, config.objective), TAG_KIND: spec.kind, **(tags or {})}
        study, trial = tags.get(TAG_STUDY, config.study_name), tags.get(TAG_TRIAL, "?")
        # Both steps read the fluent tracking URI (the registry looks the logged model up through it);
        # the model goes into the trial's own experiment, under the study's artifact root.
        info = log_model(spec, weights, run_id, run.info.experiment_id, tags={TAG_RUN_ID: run_id})
        _ensure_registered_model(client, name)
        return client.create_model_version(
            name,
            info.model_uri,
            run_id=run_id,
            tags=tags,
            description=f"study {study}, trial {trial} ({spec.kind})",
            model_id=info.model_id,
        )


def load_study(config: StudyConfig) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage))
    except KeyError:
        raise RegistryError(f"no study named {config.study_name!r} in {config.storage}") from None


def best_run_id(config: StudyConfig, study: Any = None) -> str | None:
    study = study or load_study(config)
    # A confirmed study's best is the configuration best over all its runs; its search trial's run.
    best = confirmed_best(study) or select_best(study.get_trials(deepcopy=False), config.objective)
    return best.user_attrs.get(ATTR_RUN_ID) if best is not None else None


def register_best(config: StudyConfig, study: Any = None) -> Any | None:
    """End of a sweep: register the best trial's model (idempotent); None when there is none.

    No alias moves here: only ``harness promote`` does, on evidence. A failure is logged, not
    raised: the sweep's trials stand whatever happens to the registry, and ``harness promote``
    registers the same model later.
    """
    try:
        run_id = best_run_id(config, study)
        version = register(config, run_id, tags={TAG_PROMOTION: NOT_PROMOTED_AT_SWEEP_END}) if run_id else None
    except Exception as exc:
        log.warning("could not register the best trial's model in %s: %s", config.registry_name, exc)
        return None
    if version is not None:
        log.info("registered %s version %s from run %s", config.registry_name, version.version, run_id)
    return version


def _heldout_score(key: str) -> MetricName | None:
    """The held-out consistency score a version's tag names, if it names one."""
    name = try_parse(key)
    return name if name is not None and name.family == CONSISTENCY and name.split == HELDOUT else None


def version_rows(client: Any, name: str) -> list[dict[str, str]]:
    """One row per version, newest first: aliases, source trial, objective, held-out scores."""
    by_version: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(number), []).append(alias)  # search results carry no aliases
    rows = []
    for v in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version)):
        tags = v.tags
        scores = {m.short: tags[k] for k in sorted(tags) if (m := _heldout_score(k))}
        objective = {name: tags[k] for k in sorted(tags) if (name := objective_of(k))}
        rows.append(
            {
                "version": v.version,
                "aliases": ", ".join(sorted(by_version.get(str(v.version), []))),
                "study/trial": f"{tags.get(TAG_STUDY, '-')}/{tags.get(TAG_TRIAL, '-')}",
                "run": v.run_id or "-",
                "kind": tags.get(TAG_KIND, "-"),
                "objective": ", ".join(f"{k}={s}" for k, s in objective.items()) or "-",
                "held-out scores": ", ".join(f"{k}={s}" for k, s in scores.items()) or "-",
                "eval digest": tags.get(TAG_EVAL_DIGEST, "-"),
            }
        )
    return rows


@dataclass
class PromotionResult:
    name: str
    alias: str
    candidate_run_id: str
    candidate: Scores
    champion_version: str | None = None
    champion: Scores | None = None
    baseline: Scores | None = None  # the opponent of the first holder: the untuned base model
    opponent_run_id: str | None = None  # the run whose scores the candidate was compared with
    candidate_version: str | None = None
    promoted: bool = False
    dry_run: bool = False
    reason: str = ""
    reevaluation_run_id: str | None = None
    already: bool = False  # the candidate already held the alias
    written: list[str] = field(default_factory=list)
    interval: PairedDiff | None = None  # the paired interval of the improvement, when it decided
    interval_line: str = ""

    def summary(self) -> str:
        head = "dry run: " if self.dry_run else ""
        verdict = "promoted" if self.promoted else "not promoted"
        if self.dry_run and self.promoted:
            verdict = "would promote"
        return f"{head}{verdict} run {self.candidate_run_id} to {self.name}@{self.alias}: {self.reason}"


def _move_aliases(client: Any, name: str, alias: str, version: str, old: Any | None) -> list[str]:
    """``previous`` to the old champion, then ``alias`` last; undo ``previous`` if that fails."""
    previous = PREVIOUS if alias == CHAMPION else f"{alias}-{PREVIOUS}"
    before = alias_version(client, name, previous)
    written = []
    if old is not None:
        client.set_registered_model_alias(name, previous, str(old.version))
        written.append(f"{previous} -> {old.version}")
    try:
        client.set_registered_model_alias(name, alias, version)
    except BaseException:
        if old is not None:
            _restore_alias(client, name, previous, before)
        raise
    return [*written, f"{alias} -> {version}"]


def _restore_alias(client: Any, name: str, alias: str, before: Any | None) -> None:
    try:
        if before is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, str(before.version))
    except Exception:  # the original error matters more; say what is left behind
        log.exception("could not put alias %s of %s back to %s", alias, name, getattr(before, "version", None))


def _judge(config: StudyConfig, client: Any, opponent: Opponent, candidate: Measured, result: PromotionResult) -> bool:
    """Fill in the comparison with the opponent (holder or baseline); True when the candidate wins."""
    spec = per_example(config.objective)
    if spec is not None and candidate.rows is None:  # checked first: measuring the opponent may cost an evaluation
        missing = f"run {result.candidate_run_id} has no per-example table {table_path(spec.split)}"
        result.reason = f"no per-example evidence against {opponent.label}: {missing}"
        return False
    measured, result.reevaluation_run_id, why = measure_opponent(config, client, opponent, candidate, result.dry_run)
    if measured is None:
        result.reason = f"no evidence against {opponent.label}: {why}"
        return False
    if opponent.against == "baseline":
        result.baseline = measured.scores
        label = f"{opponent.label} (run {measured.scores.run_id})"
    else:
        result.champion, label = measured.scores, opponent.label
    result.opponent_run_id = measured.scores.run_id
    interval, why = paired_interval(config, candidate, measured)
    decision = decide(
        config.objective,
        candidate.scores.values,
        measured.scores.values,
        interval=interval,
        min_delta=config.promotion.min_delta,
        champion_label=label,
        why_no_interval=why,
        against=opponent.against,
    )
    result.interval, result.interval_line = decision.interval, decision.line
    digest = f" (eval digest {candidate.scores.eval_digest or '-'})" if decision.wins else ""
    result.reason = decision.reason + digest
    return decision.wins


def _candidate(config: StudyConfig, client: Any, run_id: str, force: bool) -> tuple[Any, Measured]:
    """The candidate run and its measure; RegistryError, before anything is written, when it cannot be one."""
    run = client.get_run(run_id)
    # A FAILED, KILLED or still RUNNING trial's metrics and weights may be partial: never promoted,
    # --force included (force skips the comparison, not the evidence that training ended).
    if run.info.status != "FINISHED":
        raise RegistryError(f"run {run_id} is {run.info.status}, not FINISHED: only a finished run can be promoted")
    candidate = measure(config, client, run)
    if not candidate.scores.values and not force:
        raise RegistryError(f"run {run_id} has no value for the objective {config.objective.names}; use --force")
    return run, candidate


def promote(
    config: StudyConfig,
    run_id: str | None = None,
    *,
    alias: str = CHAMPION,
    dry_run: bool = False,
    force: bool = False,
) -> PromotionResult:
    """Promote ``run_id`` (default: the study's best trial) to ``registry_name@alias`` if it beats
    the current holder, or with no holder yet the untuned baseline, on the study's objective under
    the same evaluation; ``force`` skips the comparison, ``dry_run`` writes nothing (not even a
    re-evaluation run, nor the lock). Read, compare and move hold the model's promotion lock
    (:mod:`harness.lifecycle.locking`): concurrent promotions take turns, each comparing with the
    champion the one before it left. A refused candidate that is already registered says why in
    its version's ``harness.promotion`` tag."""
    client = client_for(config.mlflow.tracking_uri)
    name = config.registry_name
    run_id = run_id or best_run_id(config)
    if run_id is None:
        raise RegistryError(f"study {config.study_name!r} has no complete trial to promote")
    run, candidate = _candidate(config, client, run_id, force)
    if dry_run:
        return _compare(config, client, run, candidate, alias, force, dry_run=True)[0]
    _ensure_registered_model(client, name)  # the lock is one of its tags
    try:
        with promotion_lock(client, name) as lock:
            result, old = _compare(config, client, run, candidate, alias, force, dry_run=False)
            if result.promoted:
                if not lock.holds():  # expired under us (a stalled process): another may be moving
                    raise RegistryError(f"lost the promotion lock of {name} before writing; nothing written")
                _write(config, client, result, old)
            elif not result.already:
                _record_refusal(client, result)
            return result
    except LockTimeout as exc:
        raise RegistryError(str(exc)) from None


def _compare(
    config: StudyConfig, client: Any, run: Any, candidate: Measured, alias: str, force: bool, dry_run: bool
) -> tuple[PromotionResult, Any | None]:
    """Read the alias's holder (returned too) and decide: ``promoted`` says whether the candidate takes it."""
    name, run_id = config.registry_name, run.info.run_id
    old = alias_version(client, name, alias)
    result = PromotionResult(name, alias, run_id, candidate.scores, str(old.version) if old else None, dry_run=dry_run)
    if old is not None and old.run_id == run_id and model_format.readable_tags(old.tags):
        result.reason = f"run {run_id} is already {name}@{alias} (version {old.version})"
        result.already = True
        return result, old
    if force:
        result.reason = "forced (no comparison)"
    else:
        # The first holder must beat the untuned base model, by the same rule as every later one.
        opponent = champion(client, name, old) if old is not None else baseline(client, run.info.experiment_id)
        if not _judge(config, client, opponent, candidate, result):
            return result, old
    result.promoted = True
    return result, old


def _record_refusal(client: Any, result: PromotionResult) -> None:
    """A version already registered from the refused run (the sweep's best, say) says why it was not promoted."""
    version = find_version(client, result.name, result.candidate_run_id)
    if version is not None:
        why = f"{result.alias}: not promoted: {result.reason}"[:5000]
        client.set_model_version_tag(result.name, str(version.version), TAG_PROMOTION, why)


def _write(config: StudyConfig, client: Any, result: PromotionResult, old: Any | None) -> None:
    """Register and tag first, move aliases last: a failure before the final move changes no alias."""
    name, alias = result.name, result.alias
    version = str(register(config, result.candidate_run_id, client).version)
    result.candidate_version = version
    client.set_model_version_tag(name, version, TAG_PROMOTION, f"{alias}: {result.reason}"[:5000])
    if result.interval is not None:
        context = {"vs_version": result.champion_version, "vs_run": result.opponent_run_id}
        for key, value in evidence_tags(result.interval, {**context, "min_delta": config.promotion.min_delta}).items():
            client.set_model_version_tag(name, version, key, value)
    result.written = [f"version {version} registered and tagged", *_move_aliases(client, name, alias, version, old)]
