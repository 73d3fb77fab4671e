"""The ``harness`` command: each command parses, builds, runs and cleans up; nothing else."""

from harness.cli import compare, data, launch, registry, scoring, study, synthesis  # noqa: F401  (each registers its commands)
from harness.cli.common import app

__all__ = ["app"]
