"""One retry policy for remote work: which errors to retry, how long to wait, when to give up.

``retrying`` builds a ``tenacity.Retrying`` that retries only what its predicate accepts, waits
exponentially (capped), or as long as the server asked (``Retry-After``, capped too), and gives up
after a number of attempts or when the next attempt would start past an overall deadline,
whichever comes first. The last error is re-raised as it is, so callers catch what they know.
Sleep and clock are injectable: tests run the policy without waiting.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Predicate = Callable[[BaseException], bool]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, retry-after seconds or HTTP date."""
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


def server_wait_s(error: BaseException | None) -> float | None:
    """The ``Retry-After`` an HTTP error carries (openai and httpx errors keep their response)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    return retry_after_s(headers) if headers is not None else None


class Backoff(wait_base):
    """``initial_s`` doubling per attempt up to ``cap_s``, or the server's ``Retry-After``.

    Either is then capped at ``max_wait_s``: a server asking for an hour is not waited on blindly.
    """

    def __init__(self, initial_s: float, cap_s: float, max_wait_s: float) -> None:
        self.initial_s, self.cap_s, self.max_wait_s = initial_s, cap_s, max_wait_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        told = server_wait_s(error)
        exponent = retry_state.attempt_number - 1
        wait = told if told is not None else min(self.initial_s * 2.0 ** min(exponent, 64), self.cap_s)
        return min(wait, self.max_wait_s)


class Deadline(stop_base):
    """Stop when the next attempt would start more than ``seconds`` after this object was made.

    Tenacity's own ``stop_before_delay`` reads ``time.monotonic`` directly; this one takes a clock.
    """

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.start = clock()

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() - self.start + retry_state.upcoming_sleep > self.seconds


def retrying(
    retry_if: Predicate,
    *,
    max_attempts: int | None = None,
    deadline_s: float | None = None,
    initial_wait_s: float = 1.0,
    backoff_cap_s: float = 60.0,
    max_wait_s: float = 600.0,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> tenacity.Retrying:
    """A retry policy for one call: ``retrying(...)(fn, *args, **kwargs)``.

    Build one per call: the deadline counts from here. ``max_attempts`` counts the first try;
    with neither it nor ``deadline_s`` the policy retries for as long as ``retry_if`` says so.
    """
    stops: list[stop_base] = []
    if max_attempts is not None:
        stops.append(tenacity.stop_after_attempt(max_attempts))
    if deadline_s is not None:
        stops.append(Deadline(deadline_s, clock))
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if),
        wait=Backoff(initial_wait_s, backoff_cap_s, max_wait_s),
        stop=tenacity.stop_any(*stops),
        sleep=lambda seconds: sleep(float(seconds)),  # tenacity passes a float subclass
        reraise=True,
    )
