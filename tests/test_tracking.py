import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.tracking import MetricBuffer, Tracker


def test_metrics_go_in_batches_and_read_back_with_steps(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "exp")
    parent = tracker.parent_run("exp", {})
    child = tracker.child_run(parent, "trial-0", {"harness.trial_number": "0"})
    buffer = MetricBuffer(tracker, child, flush_every=100, flush_seconds=3600)
    for step in range(250):
        buffer.add({"train_loss": 3.0 - step / 100, "learning_rate": 1e-4}, step)
    buffer.flush()
    assert buffer.batches_sent == 5  # 500 points, flushed every 100: 5 round-trips, not 500
    history = MlflowClient(uri).get_metric_history(child, "train_loss")
    assert [m.step for m in history] == list(range(250))
    run = MlflowClient(uri).get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent


def test_parent_run_is_reopened_not_duplicated(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = Tracker(uri, "study").parent_run("study", {})
    Tracker(uri, "study").end(first, "FINISHED")
    again = Tracker(uri, "study").parent_run("study", {})
    assert again == first
    assert MlflowClient(uri).get_run(first).info.status == "RUNNING"


def test_artifacts_live_beside_the_sqlite_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    tracker = Tracker(uri, "exp")
    location = MlflowClient(uri).get_experiment(tracker.experiment_id).artifact_location
    assert location.startswith((tmp_path / "store" / "artifacts").as_uri())


def test_points_that_cannot_be_sent_are_kept_and_sent_later(tmp_path: Path, monkeypatch: Any) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "exp")
    child = tracker.child_run(tracker.parent_run("exp", {}), "trial-0", {})
    buffer = MetricBuffer(tracker, child, flush_every=10, flush_seconds=3600)
    real_log_batch = tracker.client.log_batch

    def server_away(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("API request failed: Connection refused")

    monkeypatch.setattr(tracker.client, "log_batch", server_away)
    for step in range(25):  # two flushes fail while training goes on
        buffer.add({"train_loss": float(step)}, step)
    with pytest.raises(MlflowException):
        buffer.flush()  # the last flush says so: the run must not end as if all were logged

    monkeypatch.setattr(tracker.client, "log_batch", real_log_batch)  # the server is back
    buffer.flush()
    history = MlflowClient(uri).get_metric_history(child, "train_loss")
    assert [m.step for m in history] == list(range(25))


def test_a_table_logged_again_is_replaced_not_appended(tmp_path: Path) -> None:
    from harness.evaluation.tables import parse_table

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "exp")
    run = tracker.parent_run("exp", {})
    tracker.log_table(run, [{"number": 0, "state": "COMPLETE"}], "trials.json")
    tracker.log_table(run, [{"number": 0, "state": "COMPLETE"}, {"number": 1, "state": "FAIL"}], "trials.json")

    client = MlflowClient(uri)
    local = client.download_artifacts(run, "trials.json", str(tmp_path / "down"))
    rows = parse_table(json.loads(Path(local).read_text()))
    assert rows == [{"number": 0, "state": "COMPLETE"}, {"number": 1, "state": "FAIL"}]
    # MLflow's own reader (and the UI's table view, through the loggedArtifacts tag) sees the same;
    # it finds runs through the fluent API, hence the global tracking URI.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        table = client.load_table(tracker.experiment_id, "trials.json", run_ids=[run])
    finally:
        mlflow.set_tracking_uri(previous)
    assert table["number"].tolist() == [0, 1]
    logged = json.loads(client.get_run(run).data.tags["mlflow.loggedArtifacts"])
    assert logged == [{"path": "trials.json", "type": "table"}]


def test_the_ui_link_asks_for_the_runs_view_of_the_study() -> None:
    from harness.tracking import ui_runs_link

    local = ui_runs_link("sqlite:///mlruns/mlflow.db", "3")
    assert local == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    served = ui_runs_link("https://mlflow.example.com/", "7")
    assert served == "https://mlflow.example.com/#/experiments/7/runs?workflowType=machine_learning"
