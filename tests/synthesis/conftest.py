"""A fake OpenAI-compatible endpoint that writes questions and house-style answers per topic, and
specs pointing at it; every store inside tmp_path."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.evaluation.fake_server import FakeState, Reply, fake_server

SYSTEM = "You are a professional and friendly programmer."
GOOD = "{opening}\n\n**Example:**\n```python\nitems = sorted(data)\nprint(items)\n```\n\n**Tip:** Keep the code short and readable."

# topic -> (question reply, answer reply): each topic exercises one filter.
TOPICS: dict[str, tuple[str, Reply]] = {
    "sorting": (
        "How do I sort a list of tuples by the second item?",
        Reply(GOOD.format(opening="Use sorted() with a key function that picks the second item.")),
    ),
    "venvs": (
        "Question: How do I create a virtual environment on Linux?",
        Reply(GOOD.format(opening="Run python -m venv .venv and activate it before installing packages.")),
    ),
    "greeting": ("What is the fastest way to read a large CSV file?", Reply("Hello! How can I assist you today?")),
    "nothing": ("Why does my recursive function hit the recursion limit?", Reply("   ")),
    "ask back": (
        "How should I structure logging in a Flask application?",
        Reply("It depends on your setup.\n\nWhich version of Flask do you use?"),
    ),
    "no tip": (
        "How can I measure how long a block of code takes to run?",
        Reply("Use time.perf_counter() around the block.\n\n**Example:**\n```python\nimport time\n```"),
    ),
    "rambling": (
        "What are the trade-offs of using threads for CPU-bound work?",
        Reply(GOOD.format(opening="Threads share the interpreter lock. " * 40)),
    ),
    "cut off": (
        "How do I parse command-line arguments with argparse?",
        Reply(GOOD.format(opening="Create a parser and add arguments."), finish_reason="length"),
    ),
    "sorting again": (
        "How do I sort a list of tuples by the second item?",
        Reply(GOOD.format(opening="Pass key=lambda pair: pair[1] to sorted().")),
    ),
    "no question": ("Sure, here is something about dictionaries.", Reply(GOOD.format(opening="Unused."))),
}
EXPECTED = {  # what each filter should reject among TOPICS (one question per topic)
    "question_invalid": 1,
    "empty": 1,
    "truncated": 1,
    "chatter": 1,
    "question_back": 1,
    "layout": 1,
    "length": 1,
    "near_duplicate": 1,
}
ACCEPTED_TOPICS = ["sorting", "venvs"]


def topic_of(prompt: str) -> str:
    return re.search(r"question about (.+?) that this persona", prompt, re.S)[1]


def synth_reply(body: dict[str, Any]) -> Reply:
    """A question request names its topic; an answer request carries the question."""
    messages = body["messages"]
    if messages[0]["role"] == "user":
        return Reply(TOPICS[topic_of(messages[0]["content"])][0])
    question = messages[-1]["content"]
    for asked, answer in TOPICS.values():
        if asked.removeprefix("Question: ") == question:
            # the two "sorting" topics share a question: answer with the first topic's answer
            return answer
    raise AssertionError(f"unexpected question {question!r}")


@pytest.fixture
def fake_endpoint() -> Iterator[tuple[FakeState, str]]:
    state = FakeState(reply=synth_reply)
    with fake_server(state) as url:
        yield state, url


def spec_dict(tmp_path: Path, base_url: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "programmer-synth",
        "system_prompt": SYSTEM,
        "personas": [
            {"name": "backend", "description": "A backend engineer who writes Python services.", "topics": list(TOPICS)}
        ],
        "questions_per_topic": 1,
        "answer_instructions": "Open with one sentence, then **Example:** with code, then **Tip:**.",
        "endpoint": {"kind": "base_url", "base_url": base_url, "model": "fake", "concurrency": 3, "max_retries": 0},
        "seed": 7,
        "filters": {"required_labels": ["Example", "Tip"], "require_code_block": True, "max_words": 120},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db", "experiment": "synthesis"},
    }
    return {**spec, **changes}


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
