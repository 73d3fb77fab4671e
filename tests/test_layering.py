"""The package reads top-down: no import cycle, and no layer imports one above it.

Every import counts, function-local ones included (lazy imports of heavy libraries are fine, but a
lazy import of the harness's own modules must not hide a cycle).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
# Top to bottom: a module may import its own layer and the layers below it, never one above.
LAYERS = (
    ("harness.cli",),
    # A study's workers handed to a cluster (Ray, Kubernetes, Slurm), each running the study's loop.
    ("harness.launch",),
    ("harness.study",),
    ("harness.lifecycle",),
    ("harness.backends",),
    ("harness.synthesis",),
    ("harness.evaluation",),
    # Models behind the OpenAI protocol: clients, the local llama.cpp server, the answerer.
    ("harness.endpoints",),
    (
        "harness.answering",
        "harness.generation",
        "harness.greedy_decoding",
        "harness.models",
        "harness.data",
        "harness.tracking",
        "harness.storage",
        "harness.objective",
        "harness.search_space",
        "harness.device",
        "harness.retry",
    ),
    ("harness.config",),
    # The endpoint config type is a settings section the judge's and synthesis' configs build on.
    ("harness.hyperparams", "harness.settings", "harness.redaction", "harness.endpoints.endpoint"),
    ("harness.metrics",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import submodule`` depends on the submodule; anything else on the module.
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets = [n for n in names if n in modules] or [node.module]
                if any(n not in modules for n in names):
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def layer(module: str) -> int:
    """The layer of the longest prefix that names ``module`` (a module may sit below its package)."""
    matches = [
        (len(p), index)
        for index, prefixes in enumerate(LAYERS)
        for p in prefixes
        if module == p or module.startswith(p + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return max(matches)[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_layer_imports_a_layer_above_it() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in targets
        if source != "harness" and target != "harness" and layer(target) < layer(source)
    ]
    assert upward == []


def test_the_checker_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_architecture_page_draws_every_floor() -> None:
    """docs/architecture.md's diagram is the map a newcomer reads: every layer's modules are on it."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    diagram = page.split("```")[1]
    for prefixes in LAYERS:
        for prefix in prefixes:
            name = prefix.rsplit(".", 1)[-1]
            assert re.search(rf"\b{name}\b", diagram), f"{prefix} is missing from the diagram in docs/architecture.md"
