"""The judge rubric: criteria, score scale and prompt templates, loaded from YAML.

The default consistency rubric ships inside the package (``harness/rubrics/consistency.yaml``),
so an installed harness needs no checkout; ``evals/consistency_rubric.yaml`` is the identical
editable copy to point ``evaluation.judge.rubric`` at when changing it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import ConfigError

# Inside the harness package, read with importlib.resources (a wheel install has no evals/).
PACKAGED_RUBRIC = "rubrics/consistency.yaml"


class RubricError(ConfigError):
    """A rubric file that is missing or malformed."""


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    description: str


@dataclass(frozen=True)
class Rubric:
    """Everything the judge prompt depends on; ``hash`` identifies it in caches and logs."""

    name: str
    criteria: tuple[Criterion, ...]
    overall: Criterion
    system_prompt: str
    user_template: str
    scale_min: int
    scale_max: int
    hash: str
    path: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.criteria)

    def messages(self, question: str, reference: str, answer: str) -> list[dict[str, str]]:
        """The chat messages for one judgement."""
        criteria = "\n".join(f'- "{c.key}" ({c.title}): {c.description}' for c in (*self.criteria, self.overall))
        user = self.user_template.format(
            question=_escape_tags(question),
            reference=_escape_tags(reference),
            answer=_escape_tags(answer),
            criteria=criteria,
            scale_min=self.scale_min,
            scale_max=self.scale_max,
        )
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": user},
        ]

    def to_percent(self, value: float) -> float:
        """Map a score on the rubric scale to 0-100."""
        span = self.scale_max - self.scale_min
        return max(0.0, min(100.0, (value - self.scale_min) / span * 100.0))


_TAGS = re.compile(r"<(/?)(question|reference|candidate)>", re.IGNORECASE)


def _escape_tags(text: str) -> str:
    """A text under review cannot open or close the template's delimiter tags."""
    return _TAGS.sub(lambda m: f"<{m.group(1)}{m.group(2)}\u200b>", text)


def packaged_rubric_bytes() -> bytes:
    """The packaged consistency rubric, as shipped."""
    return importlib.resources.files("harness").joinpath(PACKAGED_RUBRIC).read_bytes()


def _read(path: Path | str | None) -> tuple[bytes, str]:
    """(content, name to show) of a rubric file; None is the packaged one."""
    if path is None:
        name = f"harness/{PACKAGED_RUBRIC} (packaged)"
        try:
            return packaged_rubric_bytes(), name
        except OSError as error:
            raise RubricError(f"cannot read rubric {name}: {error}") from error
    # A relative path is relative to the working directory, like every other path in a config.
    resolved = Path(path).expanduser()
    try:
        return resolved.read_bytes(), str(resolved)
    except OSError as error:
        raise RubricError(f"cannot read rubric {resolved}: {error}") from error


def load_rubric(path: Path | str | None = None) -> Rubric:
    """Parse and validate a rubric YAML file; None loads the packaged consistency rubric."""
    content, name = _read(path)
    data = yaml.safe_load(content)
    if not isinstance(data, dict):
        raise RubricError(f"{name}: a rubric is a YAML mapping")
    try:
        return _build(data, hashlib.sha256(content).hexdigest()[:12], name)
    except (KeyError, TypeError, ValueError) as error:
        raise RubricError(f"{name}: {error!r}") from error


def _build(data: dict[str, Any], digest: str, path: str) -> Rubric:
    criteria = tuple(_criterion(k, v) for k, v in data["criteria"].items())
    if not criteria:
        raise ValueError("no criteria")
    scale = data.get("scale", {"min": 1, "max": 9})
    low, high = int(scale["min"]), int(scale["max"])
    if not 0 <= low < high <= 9:
        # Single-digit scores are single tokens on common tokenizers: what G-Eval weighting needs.
        raise ValueError(f"scale must lie within 0..9 with min < max, got {low}..{high}")
    rubric = Rubric(
        name=str(data.get("name", "rubric")),
        criteria=criteria,
        overall=_criterion("overall", data["overall"]),
        system_prompt=str(data["system_prompt"]),
        user_template=str(data["user_template"]),
        scale_min=low,
        scale_max=high,
        hash=digest,
        path=path,
    )
    rubric.messages("q", "r", "a")  # fails early on a template with unknown placeholders
    return rubric


def _criterion(key: str, value: dict[str, Any]) -> Criterion:
    return Criterion(key=key, title=str(value["title"]), description=str(value["description"]))
