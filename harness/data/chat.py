"""Chat JSONL in the OpenAI fine-tuning format: load and validate with file:line errors (splits: split.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.settings.asserts import Assertion, parse_checks

ROLES = frozenset({"system", "user", "assistant"})
MESSAGE_KEYS = frozenset({"role", "content", "weight", "name"})
# "assert", "threshold" and "group" are for evaluation (checked answers, paraphrase groups):
# training never reads them.
RECORD_KEYS = frozenset({"messages", "assert", "threshold", "group"})


@dataclass(frozen=True)
class Example:
    """One conversation; ``source`` is ``file:line`` for error messages.

    ``checks`` decide whether an answer to it is correct (promptfoo's asserts, with the row's
    ``threshold``); ``group`` names the question it paraphrases, shared by its other wordings.
    """

    messages: tuple[dict[str, Any], ...]
    source: str
    checks: tuple[Assertion, ...] = ()
    group: str | None = None
    threshold: float | None = None

    @property
    def prompt(self) -> list[dict[str, Any]]:
        """The conversation up to (not including) the last assistant message."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return [dict(m) for m in self.messages[:last]]

    @property
    def reference(self) -> str:
        """The last assistant answer: what a consistent model should say."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")


class DataError(ValueError):
    """Bad training data; ``problems`` holds one ``file:line: problem`` string each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        tail = [f"... and {more} more"] if more else []
        super().__init__("\n".join([f"{len(self.problems)} problem(s) in the data:", *shown, *tail]))


def _message_problems(index: int, message: Any) -> list[str]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [f"{where}: must be an object, got {type(message).__name__}"]
    problems = [f"{where}: unrecognised key {k!r}" for k in sorted(set(message) - MESSAGE_KEYS)]
    role = message.get("role")
    if role is None:
        problems.append(f"{where}: missing 'role'")
    elif role not in ROLES:
        problems.append(f"{where}.role: unknown role {role!r} (expected one of {sorted(ROLES)})")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        problems.append(f"{where}.content: missing or empty content")
    if "weight" in message:
        if role != "assistant":
            problems.append(f"{where}.weight: only assistant messages may carry a weight")
        elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
            problems.append(f"{where}.weight: must be 0 or 1, got {message['weight']!r}")
    return problems


def evaluation_problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with a record's checks, threshold and group (each problem names its field)."""
    problems = parse_checks(record["assert"])[1] if "assert" in record else []
    threshold = record.get("threshold")
    if "threshold" in record and not _finite_number(threshold):
        problems.append(f"threshold: must be a number, got {threshold!r}")
    elif "threshold" in record and "assert" not in record:
        problems.append("threshold: the example has no assert checks to score")
    group = record.get("group")
    if "group" in record and (isinstance(group, bool) or not isinstance(group, str | int) or group == ""):
        problems.append(f"group: must be a non-empty string or an integer, got {group!r}")
    return problems


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def to_example(record: dict[str, Any], source: str) -> Example:
    """A validated chat record (``record_problems`` found nothing) as an Example."""
    group = record.get("group")
    return Example(
        tuple(record["messages"]),
        source,
        checks=parse_checks(record.get("assert", []))[0],
        group=None if group is None else str(group),
        threshold=record.get("threshold"),
    )


def to_record(example: Example) -> dict[str, Any]:
    """An example as a JSONL record again, its checks, threshold and group kept when it has them."""
    record: dict[str, Any] = {"messages": list(example.messages)}
    if example.checks:
        record["assert"] = [check.model_dump(exclude_defaults=True) for check in example.checks]
    if example.threshold is not None:
        record["threshold"] = example.threshold
    if example.group is not None:
        record["group"] = example.group
    return record


def record_problems(record: Any) -> list[str]:
    """Everything wrong with one parsed JSONL record (empty when it is a usable example)."""
    if not isinstance(record, dict):
        return [f"each line must be a JSON object, got {type(record).__name__}"]
    problems = [f"unrecognised key {k!r}" for k in sorted(set(record) - RECORD_KEYS)]
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "missing or empty 'messages' list"]
    for i, message in enumerate(messages):
        problems += _message_problems(i, message)
    problems += evaluation_problems(record)
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("no assistant message: nothing to learn from")
    elif all(m.get("weight") == 0 for m in messages if isinstance(m, dict) and m.get("role") == "assistant"):
        problems.append("every assistant message has weight 0: nothing to learn from")
    return problems


def read_lines(path: Path) -> list[str]:
    """The file's lines, numbered as an editor numbers them; raise DataError when unreadable.

    ``utf-8-sig`` drops a byte-order mark (some Windows tools write one). Only ``\\n`` ends a
    line: ``str.splitlines()`` also breaks at U+2028, U+0085 and others that JSON strings may
    hold unescaped, which cut a valid record in two and shift every later line number. A
    ``\\r`` left by ``\\r\\n`` is JSON whitespace, so those files read as before.
    """
    try:
        return path.read_bytes().decode("utf-8-sig").split("\n")
    except OSError as exc:
        raise DataError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise DataError([f"{path}: not UTF-8 text ({exc.reason})"]) from exc


def read_numbered(path: Path, check: Callable[[Any], list[str]]) -> list[tuple[int, Any]]:
    """Parse every JSONL line and run ``check`` on it; raise DataError listing all problems.

    Returns ``(line number, record)`` pairs; never a partial set when anything is wrong.
    """
    records: list[tuple[int, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        source = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{source}: malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        found = check(record)
        problems += [f"{source}: {p}" for p in found]
        if not found:
            records.append((number, record))
    if not problems and not records:
        problems.append(f"{path}: no examples")
    if problems:
        raise DataError(problems)
    return records


def read_records(path: Path, check: Callable[[Any], list[str]]) -> list[tuple[str, Any]]:
    """Like ``read_numbered``, each record with its ``file:line`` for messages."""
    return [(f"{path}:{number}", record) for number, record in read_numbered(path, check)]


def load_jsonl(path: Path) -> list[Example]:
    """Chat examples from a JSONL file, every line validated (see ``record_problems``)."""
    return [to_example(record, source) for source, record in read_records(path, record_problems)]


def with_system_prompt(examples: Sequence[Example], system_prompt: str | None) -> list[Example]:
    """Prepend the study's system prompt where an example has none."""
    if not system_prompt:
        return list(examples)
    system = {"role": "system", "content": system_prompt}
    return [
        e if e.messages[0]["role"] == "system" else dataclasses.replace(e, messages=(system, *e.messages))
        for e in examples
    ]


def digest(examples: Sequence[Example]) -> str:
    """Content hash of a dataset: the same data gets the same digest whatever the file name."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps(e.messages, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
