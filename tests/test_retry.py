"""The one retry policy (harness.retry) and its two users in the OpenAI backend, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from harness.backends.openai.jobs import Caller, FileStore
from harness.backends.protocol import TrialStopped
from harness.retry import retry_after_s, retrying, server_wait_s
from harness.settings.openai import OpenAIConfig


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky(Exception):
    """A retryable error, optionally carrying a response with headers like an HTTP error."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__("flaky")
        if headers is not None:
            self.response = SimpleNamespace(headers=headers)


def failing(times: int, error: Callable[[], Exception] = Flaky) -> Callable[[], str]:
    """A function that raises ``error()`` ``times`` times, then returns "ok"; counts its calls."""
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def is_flaky(error: BaseException) -> bool:
    return isinstance(error, Flaky)


def test_backoff_doubles_up_to_its_cap_then_succeeds() -> None:
    clock = FakeClock()
    fn = failing(5)
    policy = retrying(is_flaky, max_attempts=10, backoff_cap_s=5.0, sleep=clock.sleep, clock=clock)
    assert policy(fn) == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_attempts_are_bounded_and_the_last_error_is_raised_as_is() -> None:
    clock = FakeClock()
    fn = failing(100)
    with pytest.raises(Flaky):
        retrying(is_flaky, max_attempts=3, sleep=clock.sleep, clock=clock)(fn)
    assert fn.calls["n"] == 3  # type: ignore[attr-defined]
    assert len(clock.sleeps) == 2


def test_deadline_stops_before_a_sleep_would_pass_it() -> None:
    clock = FakeClock()
    fn = failing(100)
    policy = retrying(is_flaky, deadline_s=10.0, sleep=clock.sleep, clock=clock)
    with pytest.raises(Flaky):
        policy(fn)
    assert clock.sleeps == [1.0, 2.0, 4.0]  # a further 8 s would end at 15 s
    assert clock.now <= 10.0
    assert fn.calls["n"] == 4  # type: ignore[attr-defined]


def test_deadline_counts_time_spent_in_the_calls_too() -> None:
    clock = FakeClock()

    def slow() -> str:
        clock.now += 6.0  # each attempt itself takes 6 s
        raise Flaky()

    with pytest.raises(Flaky):
        retrying(is_flaky, max_attempts=100, deadline_s=10.0, sleep=clock.sleep, clock=clock)(slow)
    assert clock.sleeps == [1.0]  # 6 + 1 + 6 = 13 s: no third attempt


def test_retry_after_is_honoured_and_capped() -> None:
    clock = FakeClock()
    told = failing(2, lambda: Flaky({"retry-after": "7"}))
    retrying(is_flaky, max_attempts=5, sleep=clock.sleep, clock=clock)(told)
    assert clock.sleeps == [7.0, 7.0]

    clock = FakeClock()
    greedy = failing(1, lambda: Flaky({"retry-after": "3600"}))
    retrying(is_flaky, max_attempts=5, max_wait_s=30.0, sleep=clock.sleep, clock=clock)(greedy)
    assert clock.sleeps == [30.0]


def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    clock = FakeClock()
    fn = failing(1, lambda: Flaky({"retry-after-ms": "20000"}))
    with pytest.raises(Flaky):
        retrying(is_flaky, deadline_s=10.0, sleep=clock.sleep, clock=clock)(fn)
    assert clock.sleeps == []


def test_errors_the_predicate_refuses_are_not_retried() -> None:
    clock = FakeClock()
    fn = failing(1, lambda: ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        retrying(is_flaky, max_attempts=5, sleep=clock.sleep, clock=clock)(fn)
    assert fn.calls["n"] == 1 and clock.sleeps == []  # type: ignore[attr-defined]


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after": "-3"}) == 0.0
    assert retry_after_s({"retry-after": "not a date"}) is None
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert server_wait_s(ValueError()) is None
    assert server_wait_s(Flaky({"retry-after": "2"})) == 2.0


# -- the OpenAI backend's users of the policy -------------------------------------------------


def api_error(status: int, code: str | None = None, headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "https://api.example/v1/files")
    response = httpx.Response(status, headers=headers or {}, request=request)
    body = {"message": "nope", "type": code or "server_error", "code": code}
    kinds = {429: openai.RateLimitError, 400: openai.BadRequestError}
    return kinds.get(status, openai.InternalServerError)("nope", response=response, body=body)


def test_caller_keeps_its_rules() -> None:
    clock = FakeClock()
    settings = OpenAIConfig(max_retries=3, retry_max_wait_s=5.0)
    call = Caller(settings, clock.sleep, clock)

    assert call(failing(2, lambda: api_error(429, headers={"retry-after": "9"}))) == "ok"
    assert clock.sleeps == [5.0, 5.0]  # told 9 s, capped by retry_max_wait_s

    exhausted = failing(100, lambda: api_error(503))
    with pytest.raises(openai.InternalServerError):
        call(exhausted)
    assert exhausted.calls["n"] == 4  # type: ignore[attr-defined]

    quota = failing(100, lambda: api_error(429, code="insufficient_quota"))
    with pytest.raises(TrialStopped) as stopped:
        call(quota)
    assert stopped.value.stop_study and stopped.value.code == "insufficient_quota"
    assert quota.calls["n"] == 1  # type: ignore[attr-defined]

    refused = failing(100, lambda: api_error(400, code="invalid_value"))
    with pytest.raises(openai.BadRequestError):
        call(refused)
    assert refused.calls["n"] == 1  # type: ignore[attr-defined]


def file_store(statuses: list[str], timeout_s: float, clock: FakeClock) -> tuple[FileStore, list[str]]:
    """A FileStore whose file reports ``statuses`` in turn (the last one from then on)."""
    seen: list[str] = []

    def retrieve(file_id: str) -> Any:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        return SimpleNamespace(id=file_id, status=status, status_details="bad line 3")

    client: Any = SimpleNamespace(files=SimpleNamespace(retrieve=retrieve))
    settings = OpenAIConfig(file_processing_timeout_s=timeout_s)
    store = FileStore(client, Caller(settings, clock.sleep, clock), clock.sleep, poll_s=30.0)
    return store, seen


def test_file_processing_is_polled_until_processed() -> None:
    clock = FakeClock()
    store, seen = file_store(["pending", "running", "processed"], timeout_s=1800.0, clock=clock)
    store._wait_processed("file-1")
    assert seen == ["pending", "running", "processed"]
    assert clock.sleeps == [30.0, 30.0]


def test_file_processing_has_a_deadline() -> None:
    clock = FakeClock()
    store, seen = file_store(["pending"], timeout_s=100.0, clock=clock)
    with pytest.raises(TrialStopped, match=r"file-1 is still pending after 100 s") as stopped:
        store._wait_processed("file-1")
    assert stopped.value.code == "file_processing_timeout" and not stopped.value.stop_study
    assert clock.sleeps == [30.0, 30.0, 30.0] and len(seen) == 4


def test_file_processing_error_stops_at_once() -> None:
    clock = FakeClock()
    store, seen = file_store(["error"], timeout_s=100.0, clock=clock)
    with pytest.raises(TrialStopped, match="bad line 3") as stopped:
        store._wait_processed("file-1")
    assert stopped.value.code == "file_error" and seen == ["error"] and clock.sleeps == []
