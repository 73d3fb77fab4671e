"""How workers sharing one study notice each other's deaths."""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.settings.frozen import Frozen


class WorkersConfig(Frozen):
    """Optuna heartbeats: every running trial writes one each ``heartbeat_interval_s``; a trial
    silent for ``grace_period_s`` belonged to a dead worker: it is failed (its MLflow run closed
    FAILED with the reason) and its parameters run again, at most ``max_retry`` times.
    """

    heartbeat_interval_s: int = Field(default=30, ge=1)
    grace_period_s: int = Field(default=120, ge=2)
    max_retry: int = Field(default=1, ge=0)
    # How long a worker waits for a study database that went away (a restart, a failover) before
    # the call fails; trials keep training meanwhile and their writes go through once it is back.
    # It may exceed grace_period_s: no heartbeat can be written while the database is away, so a
    # worker that saw it come back judges no trial stale for grace_period_s + 10 s (harness.storage).
    # A database that never answered is not waited for: the storage setting is wrong (exit 2).
    reconnect_s: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _grace_exceeds_interval(self) -> WorkersConfig:
        if self.grace_period_s <= self.heartbeat_interval_s:
            raise ValueError("workers.grace_period_s must exceed workers.heartbeat_interval_s")
        return self
