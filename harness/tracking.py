"""The one module that talks to MLflow: experiment per study, parent run, nested trial runs.

Everything goes through ``MlflowClient`` with explicit run ids (no fluent global state), and
metrics travel in ``log_batch`` calls: one database round-trip per batch, not per value.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.device import TrainingDevice

# Every MLflow tag name the harness writes or reads, in one place.
TAG_ROLE = "harness.role"  # parent | baseline | eval; trials have none
PARENT_ROLE = "parent"
BASELINE_ROLE = "baseline"
EVAL_ROLE = "eval"
SYNTHESIS_ROLE = "synthesis"  # a `harness data synth` run
TAG_STUDY = "harness.study"
TAG_TRIAL = "harness.trial_number"
TAG_STATE = "harness.trial_state"
TAG_MODEL_DIR = "harness.model_dir"  # where a trial's local weights are
TAG_WEIGHTS = "harness.weights_artifact"  # the run's artifact path holding a copy of those weights
TAG_REMOTE_MODEL = "harness.remote_model"  # a remote fine-tuned model id
TAG_EVAL_DIGEST = "harness.eval_digest"  # same digest: scores comparable
TAG_MIRROR_INCOMPLETE = "harness.genai_mirror_incomplete"  # why the GenAI view lacks rows
TAG_DATASET = "harness.dataset_digest"
TAG_MODEL_SPEC = "harness.eval_model"  # on eval runs: the --model spec
TAG_REGISTERED = "harness.registered_model"  # on eval runs of a registered version
TAG_VERSION = "harness.model_version"
# On the parent run: how the last sweep ended, and the number of its first trial (shared by its workers).
TAG_OUTCOME = "harness.outcome"  # done | stopped | failed (harness.study.outcome)
TAG_OUTCOME_REASON = "harness.outcome_reason"
TAG_SWEEP_FIRST = "harness.sweep_first_trial"
# Lineage of a study whose base_model names a tracked model (models:/NAME@ALIAS, models:/NAME/3, run:ID):
# on its parent run, every trial run and the versions registered from them.
TAG_BASE_MODEL = "harness.base_model"  # the base as pinned: models:/NAME/VERSION or run:ID (else the config's)
TAG_BASE_SOURCE = "harness.base_model_source"  # the spec as the config wrote it
TAG_BASE_VERSION = "harness.base_model_version"  # NAME/VERSION, when it is a registered version
TAG_BASE_RUN = "harness.base_model_run_id"  # the run whose weights it is
LINEAGE_TAGS = (TAG_BASE_SOURCE, TAG_BASE_VERSION, TAG_BASE_RUN)
# On each trial run of a local backend: the device it trained on (harness.device.TrainingDevice).
TAG_DEVICE_KIND = "harness.device.kind"  # cuda | cpu
TAG_DEVICE_NAME = "harness.device.name"  # the GPU's name, or the CPU's model name
TAG_DEVICE_COUNT = "harness.device.count"  # GPUs visible to the worker, or CPU threads
# Model version tags.
TAG_RUN_ID = "harness.run_id"
TAG_KIND = "harness.model_kind"
TAG_PROMOTION = "harness.promotion"
TAG_PROMOTION_INTERVAL = "harness.promotion_interval"  # JSON: the paired interval that decided
TAG_PROMOTION_SEEDS = "harness.promotion_seeds"  # training runs of the candidate that interval covers
# Registered model tag: "<owner uuid>:<unix expiry>" while a promotion holds its lock.
TAG_PROMOTION_LOCK = "harness.promotion_lock"
_BATCH_METRICS = 1000
log = logging.getLogger(__name__)
_BATCH_PARAMS = 100
_BATCH_TAGS = 100
_PARAM_CHARS = 6000


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    _ensure_local_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _ensure_local_store(tracking_uri: str) -> None:
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)


def local_store_missing(tracking_uri: str) -> bool:
    """A SQLite or file store that does not exist yet: opening a client on it would create it."""
    from mlflow.utils.file_utils import local_file_uri_to_path
    from mlflow.utils.uri import is_local_uri

    if tracking_uri.startswith("sqlite:///"):
        return not Path(tracking_uri.removeprefix("sqlite:///")).expanduser().exists()
    if is_local_uri(tracking_uri):  # a file store: a path or file:...
        return not Path(local_file_uri_to_path(tracking_uri)).expanduser().exists()
    return False


def ui_runs_link(tracking_uri: str, experiment_id: str) -> str:
    """Pure: the study's runs in the MLflow UI (the server at an http(s) tracking URI, else where
    ``mlflow ui`` serves). MLflow 3.17's UI opens every experiment on its GenAI overview whatever the
    experiment's tags say (its workflow type is a browser setting): the link asks for the runs view."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def default_artifact_location(tracking_uri: str) -> str | None:
    """Keep artifacts beside a local SQLite store (mlruns/artifacts), not in the CWD."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve()
    return (db.parent / "artifacts").as_uri()


class Tracker:
    """Runs of one experiment (one study)."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None):
        self.client = _client(tracking_uri)
        self.tracking_uri = tracking_uri
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            location = artifact_location or default_artifact_location(tracking_uri)
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)

    def find_runs(self, filter_string: str, max_results: int = 1000) -> list[Any]:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=max_results))

    def parent_run(self, study_name: str, tags: Mapping[str, str]) -> str:
        """The study's parent run: reopened when the study resumes, created otherwise."""
        return self.join_parent(study_name, tags)[0]

    def join_parent(self, study_name: str, tags: Mapping[str, str]) -> tuple[str, bool]:
        """:meth:`parent_run`, and whether it was RUNNING already (a sweep in progress, which this joins)."""
        found = self.find_runs(f"tags.`{TAG_ROLE}` = '{PARENT_ROLE}'", max_results=1)
        if found:
            run = found[0]
            self.reopen(run.info.run_id)
            return run.info.run_id, run.info.status == "RUNNING"
        all_tags = {TAG_ROLE: PARENT_ROLE, TAG_STUDY: study_name, **tags}
        return self.client.create_run(self.experiment_id, tags=all_tags, run_name=study_name).info.run_id, False

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a parent run that another worker ended while this one works)."""
        self.client.update_run(run_id, status="RUNNING")  # one write; a no-op on a running run

    def child_run(self, parent_id: str, name: str, tags: Mapping[str, str]) -> str:
        """A nested run: the UI nests it under its parent through mlflow.parentRunId."""
        all_tags = {"mlflow.parentRunId": parent_id, **tags}
        return self.client.create_run(self.experiment_id, tags=all_tags, run_name=name).info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH_PARAMS):
            self.client.log_batch(run_id, params=items[i : i + _BATCH_PARAMS])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, _param_text(v)) for k, v in tags.items()]
        for i in range(0, len(items), _BATCH_TAGS):
            self.client.log_batch(run_id, tags=items[i : i + _BATCH_TAGS])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        buffer = MetricBuffer(self, run_id)
        buffer.add(metrics, step)
        buffer.flush()

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_file), artifact_path)

    def run(self, name: str, tags: Mapping[str, str]) -> str:
        """A top-level run that belongs to no study (a data synthesis)."""
        return self.client.create_run(self.experiment_id, tags=dict(tags), run_name=name).info.run_id

    def log_dataset(self, run_id: str, rows: list[dict[str, Any]], source: str, name: str, context: str) -> str:
        """``rows`` as an MLflow dataset input of the run (``mlflow.data.from_pandas``: schema,
        profile and content digest in the run's Datasets); returns that digest."""
        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = mlflow.data.from_pandas(pd.DataFrame(rows), source=source, name=name)
        tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])
        return str(dataset.digest)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    def log_table(self, run_id: str, rows: list[dict[str, Any]], artifact_file: str) -> None:
        """``rows`` as the whole table ``artifact_file``, replacing any earlier one.

        ``MlflowClient.log_table`` appends to an existing table, so a table rewritten from the
        study's state (per worker, on resume) would grow duplicate rows. The file has the same
        layout (pandas ``orient="split"``) and the same ``mlflow.loggedArtifacts`` entry, so
        ``mlflow.load_table``, the UI and :func:`harness.evaluation.tables.load_rows` read it.
        """
        import pandas as pd
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

        table = pd.DataFrame(rows).to_json(orient="split", index=False, date_format="iso")
        self.log_text(run_id, table, artifact_file)
        logged = json.loads(self.client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        entry = {"path": artifact_file, "type": "table"}
        if entry not in logged:
            self.client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, entry]))

    @contextmanager
    def closing(self, run_id: str) -> Iterator[str]:
        """End the run truthfully however the block ends: FINISHED, KILLED (Ctrl-C) or FAILED."""
        status = "FAILED"
        try:
            yield run_id
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self.end(run_id, status)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_PARAM_CHARS]


class MetricBuffer:
    """Collects metric points and sends them in batches of up to 1000.

    A batch goes out when ``flush_every`` points wait or ``flush_seconds`` have passed, so the
    UI's curves stay live during a long trial without a round-trip per value.
    """

    def __init__(self, tracker: Tracker, run_id: str, flush_every: int = 200, flush_seconds: float = 10.0):
        self.tracker = tracker
        self.run_id = run_id
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()
        self.batches_sent = 0
        self.last_step = 0

    def add(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue points; ``step=None`` means the latest step seen (final values end the curve).

        A batch that cannot be sent now (the tracking server is away past MLflow's own retries)
        stays queued and goes with the next one: training never stops for the tracking store.
        """
        from mlflow.entities import Metric

        step = self.last_step if step is None else step
        self.last_step = max(self.last_step, step)
        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        due = time.monotonic() - self._last_flush >= self.flush_seconds
        if len(self._pending) >= self.flush_every or due:
            try:
                self.flush()
            except Exception as error:  # MlflowException, requests' errors: kept, sent later
                log.warning("%d metric points kept for later: %s", len(self._pending), error)

    def flush(self) -> None:
        """Send every queued point; what could not be sent stays queued and the error propagates."""
        self._last_flush = time.monotonic()
        while self._pending:
            batch = self._pending[:_BATCH_METRICS]
            self.tracker.client.log_batch(self.run_id, metrics=batch)
            del self._pending[: len(batch)]
            self.batches_sent += 1


def flatten(prefix: str, data: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            yield from flatten(name, value)
        else:
            yield name, value


def environment_tags() -> dict[str, str]:
    return {"harness.host": os.uname().nodename, "harness.pid": str(os.getpid())}


def device_tags(device: TrainingDevice) -> dict[str, str]:
    """The tags that say what a trial trained on."""
    return {TAG_DEVICE_KIND: device.kind, TAG_DEVICE_NAME: device.name, TAG_DEVICE_COUNT: str(device.count)}
