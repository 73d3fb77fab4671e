"""What a user sees of a study in the MLflow UI, checked in a real headless Chromium.

A tiny-model study (baseline and two trials, answers mirrored into MLflow's GenAI evaluation),
its best trial promoted to ``champion`` and compared with the baseline, served by a real
``mlflow server``. Each page waits for what it must show (the UI is a React app that renders after
its API calls return) and leaves a screenshot under tmp_path, copied to $HARNESS_SCREENSHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.cli import app
from harness.config import load_config
from harness.study import run_sweep
from tests.conftest import MlflowServer

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 90  # a first page load compiles MLflow's JavaScript bundle on a busy 2-core machine
runner = CliRunner()


@pytest.fixture
def study(study_yaml: Path) -> dict[str, Any]:
    """The sweep, the promotion and the comparison, as a user runs them; the store's ids."""
    config = yaml.safe_load(study_yaml.read_text())
    config["evaluation"] = {"scorers": ["rouge_l", "structure", "detail"], "max_new_tokens": 12}
    study_yaml.write_text(yaml.safe_dump(config))
    loaded = load_config(study_yaml, [])
    result = run_sweep(loaded)
    uri = loaded.mlflow.tracking_uri
    promoted = runner.invoke(app, ["promote", str(study_yaml), "--force"])
    assert promoted.exit_code == 0, promoted.output
    compared = runner.invoke(app, ["compare", "0", "baseline", "--tracking-uri", uri], env={"COLUMNS": "100"})
    assert compared.exit_code == 0 and "compare/trial-0_vs_baseline.html" in compared.output, compared.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    return {"uri": uri, "experiment": experiment.experiment_id, "parent": result.parent_run_id, "runs": runs}


@pytest.fixture
def server(study: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    served = MlflowServer(study["uri"], tmp_path)
    try:
        served.start()
        yield served.url
    finally:
        served.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "no system Chromium: apt-get install chromium chromium-driver (.ci/run does)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    driver.save_screenshot(str(path))
    if target := os.environ.get("HARNESS_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def page(driver: Any, tmp_path: Path) -> Callable[..., str]:
    """Open a URL and wait until the page shows every text; the page's text, its screenshot taken."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body() -> str:
        return str(driver.find_element(By.TAG_NAME, "body").text)

    def visit(name: str, url: str | None, *texts: str, click: str | None = None) -> str:
        if url is not None:
            driver.get(url)
        if click is not None:
            WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.XPATH, click))[0].click()
        try:
            WebDriverWait(driver, WAIT_S).until(lambda d: all(t in body() for t in texts))
        except TimeoutException:
            shot = screenshot(driver, tmp_path, f"{name}-failed")
            missing = [t for t in texts if t not in body()]
            pytest.fail(f"{name}: {missing} not shown at {driver.current_url} ({shot}); page text: {body()[:1500]}")
        screenshot(driver, tmp_path, name)
        return body()

    return visit


def test_a_user_finds_the_study_its_answers_the_comparison_and_the_champion(
    study: dict[str, Any], server: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from harness.tracking import ui_runs_link

    visit = page(browser, tmp_path)
    experiment, runs, parent = study["experiment"], study["runs"], study["parent"]
    trial = runs["trial-0"]
    assert trial.data.metrics["eval_mirror_seconds"] > 0

    visit("experiments", f"{server}/#/experiments", "tiny")
    # MLflow 3.17 opens the experiment on its GenAI overview: with the mirror it counts the study's
    # rows (3 runs x 8 prompts), not "Traces 0".
    visit("experiment-overview", f"{server}/#/experiments/{experiment}", "Traces", "24")
    # The link the sweep prints: the parent run, the baseline and the trials nested under it.
    expand = f"//div[@row-id='{parent}']//button[contains(@data-component-id, 'runnamecellrenderer')]"
    link = ui_runs_link(server, experiment)
    visit("study-runs", link, "tiny", "baseline", "trial-0", "trial-1", click=expand)
    # A trial's evaluated rows: question, reference, and a column per scorer.
    visit(
        "trial-evaluation",
        f"{server}/#/experiments/{experiment}/runs/{trial.info.run_id}/evaluations",
        "What does git stash do, case 0?",
        "It shelves uncommitted changes.",
        "Expected output",
        *("rouge_l", "structure", "detail", "consistency"),
        "8 of 8",
    )
    # The comparison page on the parent run, rendered by the artifact viewer (an iframe).
    artifact = f"{server}/#/experiments/{experiment}/runs/{parent}/artifacts/compare/trial-0_vs_baseline.html"
    visit("compare-artifact", artifact, "compare/trial-0_vs_baseline.html")
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    visit("compare-artifact-page", None, "trial 0 vs baseline", "A: trial 0", "B: baseline", "What does git stash do")
    browser.switch_to.default_content()
    visit("registered-model", f"{server}/#/models/tiny", "tiny", "Version 1", "champion")
