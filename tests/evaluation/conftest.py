"""Fixtures of the evaluation tests: the fake OpenAI-compatible chat server and what it saw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.evaluation.fake_server import FakeState, fake_server


@pytest.fixture
def state() -> FakeState:
    return FakeState()


@pytest.fixture
def base_url(state: FakeState) -> Iterator[str]:
    with fake_server(state) as url:
        yield url
