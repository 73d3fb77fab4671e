"""The trial table (``harness trials`` and the end of a sweep): readable in 80 columns, or wide.

Narrow (the default) puts one parameter per line, as the config names it, with the trial's
MLflow run id whole on the last line (``harness promote --run`` wants all of it), and gives
each interval its own line. ``--wide`` is one line per trial with every column, cut nowhere.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import DEFAULT_STORAGE, short
from harness.metrics import CONSISTENCY, HELDOUT, MetricName
from harness.redaction import mask_url
from harness.settings.evaluation import COMPOSITE

RUN_ID_WIDTH = 32  # an MLflow run id: the params column never cuts it
WIDE_CONSOLE = 10_000  # wide lines are the terminal's to wrap (or ``less -S``'s to scroll)


def print_trials(study: Any, storage: str, wide: bool = False) -> None:
    from harness.study.report import trial_rows

    rows = trial_rows(study)
    compared = _compared_metric(study, rows)
    if wide:
        out = Console(width=WIDE_CONSOLE)
        out.print(_wide_table(study, rows, compared))
    else:
        out = Console()
        out.print(_narrow_table(study, rows, compared))
    if (confirmed := _confirmed_table(study, wide)) is not None:
        out.print(confirmed)
    if not wide:  # not in a caption, which would fold a long storage URL where a copy would break it
        where = "" if storage == DEFAULT_STORAGE else f" --storage {mask_url(storage)}"
        hint = f"every column on one line: harness trials {study.study_name}{where} --wide"
        out.print(escape(hint), soft_wrap=True)


def _narrow_table(study: Any, rows: list[dict[str, Any]], compared: str | None) -> Table:
    table = Table(
        title=f"study {escape(study.study_name)}: {escape(_objective_title(study))}",
        caption=escape(f"vs baseline: {compared}, the trial's minus the baseline's on the same prompts")
        if compared
        else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("params, mlflow run id", min_width=RUN_ID_WIDTH, max_width=RUN_ID_WIDTH, overflow="fold")
    table.add_column("objective", no_wrap=True)
    if compared:
        table.add_column("vs baseline [CI]", no_wrap=True)
    for row in rows:
        params = [f"{k}={short(v)}" for k, v in row["params"].items()]
        if row["repeat_of"] is not None:
            params.insert(0, f"repeat of trial {row['repeat_of']}")
        run_id = [row["mlflow_run_id"]] if row["mlflow_run_id"] else []
        cells = [str(row["number"]), row["state"], escape("\n".join([*params, *run_id]))]
        cells.append("\n".join(_objective_values(row["objective"])))
        if compared:
            cells.append("\n".join(_interval(row, compared)))
        table.add_row(*cells)
    return table


def _wide_table(study: Any, rows: list[dict[str, Any]], compared: str | None) -> Table:
    table = Table(title=f"study {escape(study.study_name)}")
    for column in ("number", "state", "params", _objective_header(study), "mlflow run id"):
        table.add_column(escape(column), no_wrap=True)
    if compared:
        table.add_column(escape(f"{compared} vs baseline [CI]"), no_wrap=True)
    for row in rows:
        params = ", ".join(f"{k}={short(v)}" for k, v in row["params"].items())
        objective = ", ".join(_objective_values(row["objective"]))
        number = str(row["number"]) if row["repeat_of"] is None else f"{row['number']} (repeat of {row['repeat_of']})"
        cells = [number, row["state"], escape(params), objective, row["mlflow_run_id"]]
        if compared:
            cells.append(" ".join(_interval(row, compared)))
        table.add_row(*cells)
    return table


def _confirmed_table(study: Any, wide: bool) -> Table | None:
    """The confirmed configurations (``confirm:``): each judged over all its runs, the best marked."""
    from harness.storage import ATTR_CONFIRMED

    rows = study.user_attrs.get(ATTR_CONFIRMED)
    if not rows:
        return None
    title = f"confirmed configurations: {_objective_header(study)} over training seeds and prompts"
    table = Table(title=escape(title)) if wide else Table(title=escape(title), box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("trial", "runs", "mean", "vs baseline [CI]", "seed sd", "trials"):
        table.add_column(column, no_wrap=column != "trials")
    for row in rows:
        diff = row["vs_baseline"]
        interval = [] if diff is None else [f"{diff[0]:+.3f}", f"[{diff[1]:+.3f}, {diff[2]:+.3f}]"]
        trial = f"{row['trial']} (best)" if row["best"] else str(row["trial"])
        trials = ", ".join(map(str, row["trials"]))
        cells = (
            str(row["runs"]),
            f"{row['mean']:.4f}",
            (" " if wide else "\n").join(interval),
            f"{row['seed_sd']:.4f}",
        )
        table.add_row(trial, *cells, trials)
    return table


def _objective_title(study: Any) -> str:
    directions = [d.name.lower() for d in study.directions]
    if not study.metric_names:
        return f"objective ({', '.join(directions)})"
    return "objective " + ", ".join(f"{n} ({d})" for n, d in zip(study.metric_names, directions, strict=True))


def _objective_header(study: Any) -> str:
    names = study.metric_names
    return "objective" if not names else ", ".join(names)


def _objective_values(value: Any) -> list[str]:
    if value is None:
        return [""]
    return [f"{v:.4f}" for v in value] if isinstance(value, list) else [f"{value:.4f}"]


def _interval(row: dict[str, Any], compared: str) -> list[str]:
    mean, low, high = row["vs_baseline"].get(compared, (None, None, None))
    return [""] if mean is None else [f"{mean:+.3f}", f"[{low:+.3f}, {high:+.3f}]"]


def _compared_metric(study: Any, rows: list[dict[str, Any]]) -> str | None:
    """The held-out scorer shown against the baseline: the objective's own, else the composite."""
    seen = {name for row in rows for name in row["vs_baseline"]}
    objective = (study.metric_names or [""])[0]
    for name in (objective, MetricName(CONSISTENCY, HELDOUT, COMPOSITE).key):
        if name in seen:
            return name
    return None
