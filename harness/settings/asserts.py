"""A checked answer's checks: promptfoo's assertion vocabulary as a frozen, validated model.

An ``Assertion`` is one check on an answer, written as promptfoo writes it (``type``, ``value``,
``weight``, and ``threshold`` for ``python``), so a user's existing promptfoo test set carries
over. Everything that can be wrong with a check is found here, when a data file or config is
read, never halfway through a study: an unknown type, a missing or mistyped value, a regex that
does not compile, a ``python`` target that does not import. Running the checks is
``harness.evaluation.asserts``.

Differences from promptfoo, each on purpose: a regex is Python's ``re`` (not JavaScript's),
``python`` names a function (``module:function`` or ``path/to/file.py:function``) rather than
inline code, and ``is-json`` takes no schema (no JSON Schema validator is installed; write a
``python`` check instead).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from harness.settings.frozen import Frozen

# The checks, as promptfoo names them; any of them may be negated with a ``not-`` prefix
# (promptfoo: "every test type can be negated by prepending not-"), e.g. not-contains.
BASE_TYPES: tuple[str, ...] = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "starts-with",
    "regex",
    "is-json",
    "python",
)
LIST_TYPES = frozenset({"contains-any", "contains-all", "icontains-any", "icontains-all"})
# A check function: (answer, example) -> bool | float | {"pass", "score", "reason"}.
CheckFunction = Callable[[str, dict[str, Any]], Any]


def known_types() -> list[str]:
    return [*BASE_TYPES, *(f"not-{t}" for t in BASE_TYPES)]


def split_commas(value: str) -> list[str]:
    """promptfoo's comma-separated list: fields trimmed, empty ones skipped, ``"quoted, fields"``
    keep their commas (``\\"`` / ``""`` for a quote inside). ValueError on a malformed quote."""
    fields: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= n:
            break
        if value[i] != '"':
            end = value.find(",", i)
            end = n if end < 0 else end
            fields.append(value[i:end].strip())
            i = end
            continue
        field, i = _quoted(value, i + 1)
        fields.append(field)
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] != ",":
            raise ValueError(f"expected a comma after the quoted field {field!r}")
    return fields


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The quoted field starting after its opening quote at ``i``, and the index after it."""
    out: list[str] = []
    while i < len(value):
        pair = value[i : i + 2]
        if pair in ('\\"', "\\\\", '""'):
            out.append(pair[1])
            i += 2
        elif value[i] == '"':
            return "".join(out), i + 1
        else:
            out.append(value[i])
            i += 1
    raise ValueError("unterminated quoted field")


def as_text(value: Any) -> str:
    """A value as JavaScript's ``String()`` writes it, so ``2.0`` matches ``2`` as in promptfoo."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_scalar(value: Any) -> bool:
    """A non-empty string or a finite number (promptfoo's contains value)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value != ""
    return isinstance(value, int | float) and math.isfinite(value)


@functools.lru_cache(maxsize=256)
def resolve_python(target: str) -> CheckFunction:
    """The function a ``python`` check names: ``package.module:function`` (importable from the
    working directory too) or ``path/to/file.py:function``. ValueError says why it cannot load."""
    module_name, sep, function = target.rpartition(":")
    if not sep or not module_name or not function:
        raise ValueError(f"python check {target!r}: write it as module:function or path/to/file.py:function")
    try:
        module = _load_module(module_name)
    except Exception as exc:  # whatever the user's module raises while importing
        raise ValueError(f"python check {target!r} does not import: {type(exc).__name__}: {exc}") from None
    found = getattr(module, function, None)
    if not callable(found):
        raise ValueError(f"python check {target!r}: {module_name} has no function {function!r}")
    return found


def _load_module(name: str) -> Any:
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        spec = importlib.util.spec_from_file_location(f"harness_check_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    # The `harness` console script puts its own bin directory first on sys.path, not the working
    # directory the user's check module sits in.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))
    return importlib.import_module(name)


class Assertion(Frozen):
    """One check on an answer, as promptfoo writes it.

    ``weight`` weighs its score in the example's weighted mean (promptfoo's default 1); a weight
    of 0 records the score but never fails the example. ``threshold`` is the ``python`` check's
    own: a returned number passes at or above it (above 0 without one).
    """

    type: str
    value: Any = None
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = None

    @property
    def base_type(self) -> str:
        return self.type.removeprefix("not-")

    @property
    def inverse(self) -> bool:
        return self.type.startswith("not-")

    @property
    def values(self) -> list[str]:
        """A list check's substrings: the list as given, or a comma-separated string split."""
        if isinstance(self.value, str):
            return split_commas(self.value)
        return [as_text(v) for v in self.value]

    @model_validator(mode="after")
    def _valid(self) -> Assertion:
        if self.base_type not in BASE_TYPES:
            raise ValueError(f"unknown assert type {self.type!r} (known: {', '.join(known_types())})")
        if self.threshold is not None and self.base_type != "python":
            raise ValueError(
                f"threshold: only a python check has its own threshold; an example's threshold goes on "
                f"the row, not on its {self.type} check"
            )
        problem = _value_problem(self)
        if problem:
            raise ValueError(f"value: {problem}")
        return self


def _value_problem(check: Assertion) -> str | None:
    """What is wrong with the check's value for its type; None when it is usable."""
    kind, value = check.base_type, check.value
    if kind == "is-json":
        return None if value is None else "is-json takes no value (JSON Schema validation is not supported)"
    if value is None or value == "" or value == []:
        return f"a {check.type} check needs a value"
    if kind == "equals":
        return None if _is_scalar(value) or isinstance(value, dict | list) else "must be a string, number or JSON"
    if kind in ("contains", "icontains"):
        return None if _is_scalar(value) else "must be a string or a number"
    if kind == "starts-with":
        return None if isinstance(value, str) else "must be a string"
    if kind in LIST_TYPES:
        return _list_problem(check)
    if kind == "regex":
        return _regex_problem(value)
    return _python_problem(value)


def _list_problem(check: Assertion) -> str | None:
    if isinstance(check.value, list):
        bad = [v for v in check.value if not _is_scalar(v)]
        return f"list items must be strings or numbers, got {bad[0]!r}" if bad else None
    if not isinstance(check.value, str):
        return "must be a list of strings or a comma-separated string"
    try:
        return None if check.values else "no values in the comma-separated string"
    except ValueError as exc:
        return str(exc)


def _regex_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string (a Python regular expression)"
    try:
        re.compile(value)
    except re.error as exc:
        return f"regex {value!r} does not compile: {exc}"
    return None


def _python_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be 'module:function' or 'path/to/file.py:function'"
    try:
        resolve_python(value)
    except ValueError as exc:
        return str(exc)
    return None


def parse_checks(raw: Any, where: str = "assert") -> tuple[tuple[Assertion, ...], list[str]]:
    """A row's ``"assert"`` list as checks, and its problems named by field (``assert[1].value: ...``)."""
    if not isinstance(raw, list):
        return (), [f"{where}: must be a list of checks, got {type(raw).__name__}"]
    checks: list[Assertion] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"{where}[{index}]: a check is an object with a type, got {type(item).__name__}")
            continue
        try:
            checks.append(Assertion.model_validate(item))
        except ValidationError as exc:
            problems += [_problem(f"{where}[{index}]", error) for error in exc.errors()]
    return tuple(checks), problems


def _problem(where: str, error: Any) -> str:
    """One pydantic error as ``assert[0].value: message`` (a model-level message names its field)."""
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:  # the model validator's own messages start with the field they are about
        head, sep, rest = message.partition(": ")
        field, message = (head, rest) if sep and head in Assertion.model_fields else ("type", message)
    return f"{where}.{field}: {message}"
