"""Each evaluated answer as a row of MLflow's GenAI evaluation, on the run that made it.

The MLflow UI then lists every prompt of a trial (or the baseline) with its question, reference,
answer and one assessment per harness scorer. It is a mirror: the scores are the ones already in
the split's table (``eval/{split}.json``), handed to ``mlflow.genai.evaluate`` through code scorers
that read them, never recomputed. The harness's tables and paired intervals stay the source of
truth for the objective and promotion; the mirror logs no metric of its own (``aggregations=[]``).

What MLflow 3.17's evaluate does that the mirror guards against: its default thread pools (about
200 threads) exhaust the tracking store's connection pool and silently drop rows, so the workers are
bounded and the stored rows counted afterwards (:class:`MirrorError` when any is missing); it reads
the global tracking URI, active experiment and active run, so they are set for the call and put
back after; it ends the run it evaluates in, so the run is marked RUNNING again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.evaluation.task import CORRECT, FAILED_CHECKS
from harness.metrics import JUDGE
from harness.settings.evaluation import COMPOSITE

# The columns mirrored as scorers, in the order the UI shows them; each with its rationale column.
MIRRORED = ("structure", "detail", "embedding", "rouge_l", COMPOSITE, CORRECT, JUDGE)
RATIONALE = {CORRECT: FAILED_CHECKS, JUDGE: "judge_reasons"}
# Bounded: MLflow's own default (about 40 predict + 160 scorer threads) loses rows on SQLite.
MAX_WORKERS = 4
WORKERS_ENV = "MLFLOW_GENAI_EVAL_MAX_WORKERS"
URI_ENV = "MLFLOW_TRACKING_URI"
# What the rows are tagged with (trace tags), so a split or one question is found in the UI's search.
TAG_SPLIT = "harness.split"
TAG_EXAMPLE = "harness.example_id"
SOURCE_RUN = "mlflow.sourceRun"  # trace metadata: the run a trace was made in


class MirrorError(RuntimeError):
    """MLflow stored fewer rows than the mirror sent: the UI would show an incomplete evaluation."""


@dataclass(frozen=True)
class Mirrored:
    """What one mirror stored: rows sent and found back, and the scorers they carry."""

    rows: int
    scorers: tuple[str, ...]


def present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def mirrored_scorers(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Pure: the mirrored columns that have a value in some row of some split."""
    rows = [row for table in tables.values() for row in table]
    return [name for name in MIRRORED if any(present(row.get(name)) for row in rows)]


def row_key(split: str, example_id: str) -> str:
    return f"{split}/{example_id}"


def records(run_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Pure: ``mlflow.genai.evaluate`` rows: the question (with its id and split) as inputs, the
    answer as outputs, the reference as the expected response, split and id as trace tags.

    Each row's request id names the run too: MLflow's default is a hash of the inputs alone, so
    the same prompt evaluated on two runs would share one trace (and mix their assessments).
    """
    out = []
    for split, table in tables.items():
        for index, row in enumerate(table):
            example_id = str(row.get("id") or index)
            out.append(
                {
                    "request_id": hashlib.sha256(f"{run_id}/{row_key(split, example_id)}".encode()).hexdigest(),
                    "inputs": {"question": str(row.get("question", "")), "id": example_id, "split": split},
                    "outputs": str(row.get("answer", "")),
                    "expectations": {"expected_response": str(row.get("reference", ""))},
                    "tags": {TAG_SPLIT: split, TAG_EXAMPLE: example_id},
                }
            )
    return out


def values_by_row(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]]:
    """Pure: each row's table entry under :func:`row_key`, for the scorers to read."""
    return {
        row_key(split, str(row.get("id") or index)): row
        for split, table in tables.items()
        for index, row in enumerate(table)
    }


def assessment(name: str, row: Mapping[str, Any] | None) -> tuple[float | None, str | None]:
    """Pure: the value a mirrored scorer reports for one row, and its rationale.

    A value the harness did not get (a judge that failed, an answer nothing checks) stays missing:
    that row gets no assessment from that scorer rather than a made-up score.
    """
    if row is None or not present(row.get(name)):
        return None, None
    reason = row.get(RATIONALE.get(name, ""))
    text = None
    if isinstance(reason, list):
        text = "; ".join(str(r) for r in reason if r) or None
    elif present(reason) and str(reason):
        text = str(reason)
    return float(row[name]), text


def _scorer(name: str, rows: Mapping[str, Mapping[str, Any]]) -> Any:
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    def read(inputs: dict[str, Any]) -> Feedback | None:
        value, rationale = assessment(name, rows.get(row_key(inputs["split"], inputs["id"])))
        # None: no assessment on that row, as the harness's own mean leaves the value out.
        return None if value is None else Feedback(name=name, value=value, rationale=rationale)

    return scorer(read, name=name, aggregations=[])


@contextlib.contextmanager
def fluent_run(tracking_uri: str, experiment_id: str, run_id: str) -> Iterator[None]:
    """``run_id`` as MLflow's active run on ``tracking_uri``, everything global put back after."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if mlflow.active_run() is not None:
        raise MirrorError("an MLflow run is already active in this process: the mirror would log into it")
    saved = {key: os.environ.get(key) for key in (WORKERS_ENV, URI_ENV)}
    before_uri = utils._tracking_uri  # None unless set_tracking_uri was called: put back as it was
    os.environ[WORKERS_ENV] = str(MAX_WORKERS)
    utils.set_tracking_uri(tracking_uri)
    try:
        with _active_experiment(experiment_id), mlflow.start_run(run_id=run_id):
            yield
    finally:
        mlflow.MlflowClient(tracking_uri).update_run(run_id, status="RUNNING")  # start_run's exit ended it
        utils.set_tracking_uri(before_uri)
        for key, value in saved.items():
            _restore_env(key, value)


@contextlib.contextmanager
def _fresh_random() -> Iterator[None]:
    """Trace ids come from Python's global ``random`` (OpenTelemetry's id generator), which a trial
    seeds for its own reproducibility: two runs evaluated after the same seed would get the same
    trace ids and share rows. Unpredictable ids for the call; the seeded state put back after."""
    state = random.getstate()
    random.seed(os.urandom(16))
    try:
        yield
    finally:
        random.setstate(state)


@contextlib.contextmanager
def _active_experiment(experiment_id: str) -> Iterator[None]:
    """Traces go to the active experiment: the run's own, for the call."""
    import mlflow.tracking.fluent as fluent

    before = fluent._active_experiment_id
    fluent._active_experiment_id = experiment_id
    try:
        yield
    finally:
        fluent._active_experiment_id = before


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def stored_rows(experiment_id: str, run_id: str) -> list[Any]:
    """The traces linked to ``run_id`` (on the active tracking URI): one per mirrored row."""
    import mlflow

    return list(mlflow.search_traces(locations=[experiment_id], run_id=run_id, return_type="list", include_spans=False))


def mirror(
    tracking_uri: str, experiment_id: str, run_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Mirrored:
    """Mirror the splits' scored rows onto ``run_id``; :class:`MirrorError` when rows went missing."""
    tables = {split: rows for split, rows in tables.items() if rows}
    data = records(run_id, tables)
    if not data:
        return Mirrored(0, ())
    import mlflow.genai

    names = mirrored_scorers(tables)
    by_row = values_by_row(tables)
    scorers = [_scorer(name, by_row) for name in names]
    with fluent_run(tracking_uri, experiment_id, run_id):
        before = {t.info.trace_id for t in stored_rows(experiment_id, run_id)}
        # evaluate() prints a summary and a link to stdout: the harness says what it did itself.
        with contextlib.redirect_stdout(io.StringIO()), _fresh_random():
            mlflow.genai.evaluate(data=data, scorers=scorers)
        new = [t for t in stored_rows(experiment_id, run_id) if t.info.trace_id not in before]
    # Each row on a trace of its own (made for this run) with its tags.
    own = sum(1 for t in new if t.info.tags.get(TAG_EXAMPLE) and t.info.request_metadata.get(SOURCE_RUN) == run_id)
    if len(new) != len(data) or own != len(data):
        raise MirrorError(
            f"MLflow's GenAI evaluation stored {len(new)} of {len(data)} rows ({own} of this run, with their tags)"
            f" on run {run_id}; the harness's own tables eval/*.json are complete (mlflow.genai_mirror: false turns"
            " the mirror off)"
        )
    return Mirrored(len(new), tuple(names))
