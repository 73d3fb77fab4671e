"""harness compare: two runs' answers side by side, from a real MLflow store in tmp_path."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.lifecycle.compare import compare
from harness.tracking import Tracker

runner = CliRunner()


def rows(values: dict[str, float], answer: str) -> list[dict]:
    return [
        {
            "id": f"heldout.jsonl:{key}",
            "question": f"What does case {key} do?",
            "reference": f"It does {key}.",
            "answer": f"{answer} {key}",
            "structure": value,
            "consistency": value,
        }
        for key, value in values.items()
    ]


def make_study(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A study as a sweep leaves it: parent, baseline and two trials with their answer tables, trial 1
    registered with the champion alias; returns the tracking URI and the run ids."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracker = Tracker(uri, "tiny")
    parent = tracker.parent_run("tiny", {})
    runs = {"parent": parent}
    sides = {
        "baseline": ({"role": "baseline"}, {"1": 0.2, "2": 0.3, "3": 0.4}),
        "trial0": ({"harness.trial_number": "0"}, {"1": 0.6, "2": 0.1, "3": 0.5}),
        "trial1": ({"harness.trial_number": "1"}, {"1": 0.9, "2": 0.8, "3": 0.45}),
    }
    for name, (tags, values) in sides.items():
        run_tags = {"harness.role": "baseline"} if "role" in tags else tags
        runs[name] = tracker.child_run(parent, name, {"harness.study": "tiny", **run_tags})
        tracker.log_table(runs[name], rows(values, f"answer of {name}"), "eval/heldout.json")
        tracker.end(runs[name], "FINISHED")
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("tiny")
    version = client.create_model_version("tiny", str(tmp_path), run_id=runs["trial1"])
    client.set_registered_model_alias("tiny", "champion", version.version)
    return uri, runs


def test_pairs_trial_and_baseline_worst_first_and_logs_the_page(tmp_path: Path) -> None:
    uri, runs = make_study(tmp_path)
    client = MlflowClient(uri)
    result = compare(client, ("1", "baseline"))  # the only study in the store
    assert [s.run_id for s in result.sides] == [runs["trial1"], runs["baseline"]]
    assert [p.example_id for p in result.comparison.pairs] == ["heldout.jsonl:1", "heldout.jsonl:2", "heldout.jsonl:3"]
    assert result.artifact == "compare/trial-1_vs_baseline.html" and result.parent_run_id == runs["parent"]
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(client.download_artifacts(runs["parent"], result.artifact, tmp)).read_text()
    assert "answer of trial1 1" in page and "answer of baseline 1" in page and "consistency -0.70" in page

    # The champion by alias, a run id, and a trial of a named study: the same pairs, other order.
    by_alias = compare(client, ("models:/tiny@champion", runs["trial0"]), log=False)
    assert by_alias.sides[0].label == "tiny/1" and by_alias.artifact is None
    assert by_alias.comparison.pairs[0].example_id == "heldout.jsonl:2"  # 0.8 -> 0.1
    assert compare(client, ("tiny@champion", "0"), study="tiny", log=False).sides[1].run_id == runs["trial0"]


def test_cli_fits_80_columns_and_says_what_it_wrote(tmp_path: Path) -> None:
    uri, _ = make_study(tmp_path)
    result = runner.invoke(app, ["compare", "0", "1", "--tracking-uri", uri], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    first_pair = next(i for i, line in enumerate(lines) if "heldout.jsonl:" in line)
    assert "heldout.jsonl:3" in lines[first_pair]  # 0.5 -> 0.45: the only loss for trial 1
    assert "answer of trial0 3" in result.output and "answer of trial1 3" in result.output
    assert "consistency -0.05" in result.output and "compare/trial-0_vs_trial-1.html" in result.output

    wide = runner.invoke(
        app, ["compare", "0", "1", "--wide", "--no-log", "--tracking-uri", uri], env={"COLUMNS": "200"}
    )
    assert wide.exit_code == 0 and max(len(line) for line in wide.output.splitlines()) > 80


def test_unknown_sides_fail_in_one_line(tmp_path: Path) -> None:
    uri, _ = make_study(tmp_path)
    for spec, message in [
        ("7", "7: no finished trial 7 run in this study's experiment"),
        ("models:/tiny@nope", "models:/tiny@nope: no such registered model version"),
        ("deadbeef", "deadbeef: not a trial number, 'baseline', a run id or a registered version"),
    ]:
        result = runner.invoke(app, ["compare", spec, "baseline", "--tracking-uri", uri], env={"COLUMNS": "200"})
        assert result.exit_code == 2 and message in result.output, result.output
