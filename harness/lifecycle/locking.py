"""A lock on a registered model, kept in one of its tags, so concurrent promotions take turns.

The tag ``harness.promotion_lock`` holds ``<owner uuid>:<unix expiry>``. The MLflow registry has
no compare-and-set, so taking the lock is: read (free, expired, or ours?), write our value, wait
``SETTLE_SECONDS``, read again. Writers race by last-write-wins; anyone who read "free" writes
within a round trip of that read, so after the wait every contender sees the same last writer, and
only that one goes ahead. The others retry with jittered backoff until ``WAIT_SECONDS``. While
held, a thread extends the expiry every ``TTL_SECONDS / 3`` (a champion's re-evaluation may take
minutes); a holder that died stops extending, and its lock can be taken over once it expires.
Release deletes the tag only if it is still ours, in ``finally``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.tracking import TAG_PROMOTION_LOCK as LOCK_TAG

TTL_SECONDS = 60.0  # an unrenewed lock (its holder died) is free after this
SETTLE_SECONDS = 0.5  # longer than any contender's read-to-write gap (one registry round trip)
WAIT_SECONDS = 900.0  # how long to queue behind other promotions (each may re-evaluate a champion)
MAX_BACKOFF_SECONDS = 5.0


class LockTimeout(RuntimeError):
    """Another promotion held the lock for longer than we could wait."""


def parse(value: str | None) -> tuple[str, float] | None:
    """Pure: ``owner:expiry`` -> (owner, expiry); None for a missing or unreadable tag (free)."""
    owner, sep, expiry = (value or "").rpartition(":")
    try:
        return (owner, float(expiry)) if sep and owner else None
    except ValueError:
        return None


def is_free(held: tuple[str, float] | None, owner: str, now: float) -> bool:
    """Pure: whether ``owner`` may write the lock: nobody holds it, it expired, or it is ours."""
    return held is None or held[0] == owner or held[1] <= now


@dataclass
class TagLock:
    """The promotion lock of registered model ``name`` (which must exist)."""

    client: Any
    name: str
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None

    def read(self) -> tuple[str, float] | None:
        return parse(self.client.get_registered_model(self.name).tags.get(LOCK_TAG))

    def holds(self) -> bool:
        held = self.read()
        return held is not None and held[0] == self.owner and held[1] > time.time()

    def _write(self) -> None:
        self.client.set_registered_model_tag(self.name, LOCK_TAG, f"{self.owner}:{time.time() + TTL_SECONDS:.3f}")

    def try_acquire(self) -> bool:
        if not is_free(self.read(), self.owner, time.time()):
            return False
        from mlflow.exceptions import MlflowException

        try:
            self._write()
        except MlflowException:  # a racing first write of the tag (a unique-key clash): contention
            return False
        time.sleep(SETTLE_SECONDS)  # let every racing writer land, then see who wrote last
        return self.holds()

    def acquire(self) -> None:
        deadline, delay = time.monotonic() + WAIT_SECONDS, 0.1
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                held = self.read()
                until = time.strftime("%H:%M:%S", time.localtime(held[1])) if held else "?"
                raise LockTimeout(
                    f"another promotion of {self.name} holds {LOCK_TAG} (owner {held[0] if held else '?'},"
                    f" until {until}); waited {WAIT_SECONDS:.0f} s: try again"
                )
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: contenders must not retry in step
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        self._renewer = threading.Thread(target=self._renew, daemon=True, name=f"lock-{self.name}")
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(TTL_SECONDS / 3):
            try:
                if not self.holds():
                    return
                self._write()
            except Exception:  # a registry hiccup: try again next period, the expiry still has margin
                continue

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()  # a renewal in flight must not write the tag back after we delete it
        if self.holds():
            self.client.delete_registered_model_tag(self.name, LOCK_TAG)


@contextmanager
def promotion_lock(client: Any, name: str) -> Iterator[TagLock]:
    """Hold the promotion lock of ``name`` for the block; released however the block ends."""
    lock = TagLock(client, name)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
