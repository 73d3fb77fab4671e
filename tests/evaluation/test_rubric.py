from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.evaluation.rubric import RubricError, load_rubric
from harness.settings.evaluation import JudgeConfig

RUBRIC = Path(__file__).resolve().parents[2] / "evals" / "consistency_rubric.yaml"


def test_seed_rubric_loads_with_the_four_criteria() -> None:
    rubric = load_rubric(RUBRIC)
    assert rubric.keys == ("structure", "content", "detail", "style")
    assert rubric.overall.key == "overall"
    assert (rubric.scale_min, rubric.scale_max) == (1, 9)
    assert len(rubric.hash) == 12 and int(rubric.hash, 16) >= 0
    assert load_rubric("evals/consistency_rubric.yaml").hash == rubric.hash


def test_messages_fill_the_template_and_keep_braces_in_answers() -> None:
    rubric = load_rubric(RUBRIC)
    system, user = rubric.messages("How to loop?", "Use enumerate().", "d = {'a': {1}}")
    assert system["role"] == "system" and "JSON" in system["content"]
    assert "How to loop?" in user["content"] and "Use enumerate()." in user["content"]
    assert "d = {'a': {1}}" in user["content"]
    assert '"structure"' in user["content"] and "Level of detail" in user["content"]


def test_percent_mapping() -> None:
    rubric = load_rubric(RUBRIC)
    assert rubric.to_percent(1) == 0.0
    assert rubric.to_percent(9) == 100.0
    assert rubric.to_percent(5) == 50.0


def test_hash_follows_content(tmp_path: Path) -> None:
    copy = tmp_path / "rubric.yaml"
    copy.write_text(RUBRIC.read_text() + "\n# tweak\n")
    assert load_rubric(copy).hash != load_rubric(RUBRIC).hash


@pytest.mark.parametrize(
    "mutate",
    [
        lambda text: text.replace("max: 9", "max: 100"),  # multi-token scores defeat weighting
        lambda text: text.replace("{answer}", "{answer} {unknown}"),
        lambda text: text.replace("criteria:", "criteriaX:"),
    ],
)
def test_malformed_rubrics_fail_early(tmp_path: Path, mutate: object) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(mutate(RUBRIC.read_text()))  # type: ignore[operator]
    with pytest.raises(RubricError):
        load_rubric(bad)


def test_missing_file() -> None:
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric("evals/no_such_rubric.yaml")


# -- the packaged default rubric ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "harness" / "rubrics" / "consistency.yaml"


def test_packaged_rubric_and_the_editable_copy_never_drift() -> None:
    # evals/ is what users copy and edit; the package is what an install reads by default.
    assert PACKAGED.read_bytes() == RUBRIC.read_bytes()
    assert JudgeConfig().rubric is None


def test_default_rubric_loads_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rubric = load_rubric(None)
    assert rubric.hash == load_rubric(RUBRIC).hash
    assert rubric.keys == ("structure", "content", "detail", "style")
    assert "packaged" in rubric.path
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric("evals/consistency_rubric.yaml")  # relative to the working directory only


def test_a_built_wheel_ships_the_rubric_and_finds_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "harness", source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    build = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    built = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, check=True)
    wheel = source / "dist" / built.stdout.strip().splitlines()[-1]
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "harness/rubrics/consistency.yaml" in archive.namelist()
        archive.extractall(site)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import harness; from harness.evaluation.rubric import load_rubric; print(harness.__file__, load_rubric().hash)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True, check=True
    )
    module_file, digest = ran.stdout.split()
    assert Path(module_file).is_relative_to(site)  # the wheel's copy, not the checkout
    assert digest == load_rubric(RUBRIC).hash
