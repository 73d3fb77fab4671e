"""The Dockerfile builds from what the repository holds: every COPY source exists, and the extras
it installs are the project's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_copied_path_exists_and_the_installed_extras_are_declared() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.MULTILINE):
        *sources, _ = line.split()
        assert all((ROOT / s).exists() for s in sources), line
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (installed,) = re.findall(r"'\.\[([a-z0-9,]+)\]'", text)
    assert set(installed.split(",")) <= set(extras)
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, flags=re.MULTILINE)  # CPU by default
