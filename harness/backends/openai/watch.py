"""Following one fine-tuning job to its end: events, metrics, intermediate eval loss."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import openai
import optuna

from harness.backends.openai.jobs import TERMINAL, Caller, Sleep, event_metrics
from harness.backends.protocol import TrialContext, TrialStopped
from harness.settings.openai import OpenAIConfig

EVENTS_ARTIFACT = "openai/events.log"
# Failures a healthy job outlives: the network, the API's front end, rate limits (an exhausted
# quota is not among them: the Caller turns it into TrialStopped).
OUTAGE = (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)
_PAGE = 100


def _event_line(event: Any) -> str:
    when = datetime.fromtimestamp(event.created_at, UTC).isoformat()
    data = f" {json.dumps(event.data, sort_keys=True)}" if event.data else ""
    return f"{when} {event.level} {event.message}{data}"


class JobWatcher:
    """Polls a job until it ends, mirroring what it learns onto the trial as it goes.

    Metric points are logged once per (name, step), whether they come from events or from the
    result file; eval loss is reported once per step, in step order, so the pruner sees a curve.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        call: Caller,
        ctx: TrialContext,
        settings: OpenAIConfig,
        sleep: Sleep,
    ) -> None:
        self.client, self.call, self.ctx, self.settings, self.sleep = (
            client,
            call,
            ctx,
            settings,
            sleep,
        )
        self.latest: dict[str, tuple[int, float]] = {}  # name -> (step, value)
        self._seen: set[str] = set()
        self._lines: list[str] = []
        self._logged: set[tuple[str, int]] = set()
        self._last_reported = -1

    def wait(self, job: Any) -> Any:
        """The job once it is succeeded, failed or cancelled. TrialPruned propagates.

        Only the job's own terminal state ends the wait. The job trains (and bills) remotely
        whatever our network or the API's front end does, so a polling outage past each request's
        retries pauses the trial; past ``poll_outage_max_s`` the trial stops as resumable, and the
        retry reattaches to the same job.
        """
        interval = self.settings.poll_interval_s
        outage_since: float | None = None
        while job.status not in TERMINAL:
            try:
                changed = self.drain_events(job.id)
                job = self.call(self.client.fine_tuning.jobs.retrieve, job.id)
            except OUTAGE as error:
                outage_since = self._outage(job.id, error, outage_since)
                changed = False
            else:
                if outage_since is not None:
                    self._note(f"polling works again after {self.call.clock() - outage_since:.0f} s")
                    outage_since = None
            if job.status in TERMINAL:
                break
            self.sleep(interval)
            grown = min(interval * self.settings.poll_backoff, self.settings.poll_max_interval_s)
            interval = self.settings.poll_interval_s if changed else grown
        with contextlib.suppress(*OUTAGE):
            self.drain_events(job.id, prune=False)  # the last events arrive with the final status
        return job

    def _outage(self, job_id: str, error: Exception, since: float | None) -> float:
        """Note the outage once; stop the trial as resumable once it has lasted too long."""
        now = self.call.clock()
        if since is None:
            self._note(f"polling failed ({type(error).__name__}); job {job_id} keeps training, still watching")
            return now
        if now - since > self.settings.poll_outage_max_s:
            raise TrialStopped(
                f"polling job {job_id} has failed for {now - since:.0f} s (openai.poll_outage_max_s): "
                "the job goes on remotely; run the study again (harness sweep or harness worker) and "
                "its retry reattaches to this job",
                code="poll_outage",
                stop_study=True,
                resumable=True,
            )
        return since

    def _note(self, message: str) -> None:
        """A harness line in the events artifact, beside the service's own events."""
        self._lines.append(f"{datetime.now(UTC).isoformat()} harness {message}")
        with contextlib.suppress(Exception):  # the tracking store may be what is down
            self.ctx.log_text("\n".join(self._lines) + "\n", EVENTS_ARTIFACT)

    def _new_events(self, job_id: str) -> list[Any]:
        """Events not seen yet, oldest first (the API lists newest first, in pages)."""
        fresh: list[Any] = []
        page = self.call(self.client.fine_tuning.jobs.list_events, job_id, limit=_PAGE)
        while True:
            unseen = [e for e in page.data if e.id not in self._seen]
            fresh += unseen
            if len(unseen) < len(page.data) or not page.data or not page.has_more:
                break
            page = self.call(
                self.client.fine_tuning.jobs.list_events,
                job_id,
                limit=_PAGE,
                after=page.data[-1].id,
            )
        return fresh[::-1]

    def drain_events(self, job_id: str, prune: bool = True) -> bool:
        """Log new events (text artifact and metric points); True when there were any."""
        events = self._new_events(job_id)
        if not events:
            return False
        points = []
        for event in events:
            self._seen.add(event.id)
            self._lines.append(_event_line(event))
            found = event_metrics(event.data) if event.type == "metrics" else None
            if found:
                points.append(found)
        self.ctx.log_text("\n".join(self._lines) + "\n", EVENTS_ARTIFACT)
        self.record(points, prune=prune)
        return True

    def record(self, points: Iterable[tuple[int, dict[str, float]]], prune: bool = True) -> None:
        """Log metric points not logged yet and report new eval losses to the pruner.

        With ``prune=False`` (a finished job) the values still reach Optuna, so later trials are
        compared against this curve, but a prune verdict is ignored: the training is paid for.
        """
        for step, metrics in sorted(points, key=lambda p: p[0]):
            fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
            if fresh:
                self.ctx.log_metrics(fresh, step)
                self._logged.update((k, step) for k in fresh)
            self.latest.update({k: (step, v) for k, v in metrics.items()})
            loss = metrics.get("eval_loss")
            if loss is None or step <= self._last_reported:
                continue
            self._last_reported = step
            try:
                self.ctx.report(loss, step)
            except optuna.TrialPruned:
                if prune:
                    raise

    def final_metrics(self) -> dict[str, float]:
        """Last values; eval loss on the full validation set when the service computed it."""
        latest = dict(self.latest)
        for short, full in (
            ("eval_loss", "full_eval_loss"),
            ("eval_accuracy", "full_eval_accuracy"),
        ):
            # A full-set value counts only if no sampled value came after it.
            if full in latest and latest[full][0] >= latest.get(short, (-1, 0.0))[0]:
                latest[short] = latest[full]
        return {name: value for name, (_, value) in latest.items()}
