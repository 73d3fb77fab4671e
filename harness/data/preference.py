"""Preference (DPO) JSONL in OpenAI's format, and telling it apart from chat JSONL.

A record is ``{"input": {"messages": [...]}, "preferred_output": [assistant message],
"non_preferred_output": [assistant message]}``. Problems come back like the chat ones, one string
each, so ``read_records`` can put ``file:line`` in front of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from harness.data.chat import ROLES, DataError, Example, read_lines, read_records

Format = Literal["chat", "dpo"]
DPO_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})


def record_format(record: Any) -> Format | None:
    """The format a parsed record claims by its keys; None when it names neither."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "chat"
    return "dpo" if DPO_KEYS & set(record) else None


def detect_format(path: Path) -> Format:
    """The format of the first record that names one; chat when none does.

    Chat is the fallback because its validator then reports every bad line with its number.
    Unreadable files are chat too: reading them again reports why, with the path.
    """
    try:
        lines = read_lines(path)
    except DataError:
        return "chat"
    for line in lines:
        if not line.strip():
            continue
        try:
            found = record_format(json.loads(line))
        except json.JSONDecodeError:
            continue
        if found is not None:
            return found
    return "chat"


def _output_problems(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) != 1:
        return [f"{key}: must be a list holding exactly one assistant message"]
    message = value[0]
    if not isinstance(message, dict):
        return [f"{key}[0]: must be an object"]
    problems = [f"{key}[0]: unrecognised key {k!r}" for k in sorted(set(message) - {"role", "content"})]
    if message.get("role") != "assistant":
        problems.append(f"{key}[0].role: must be 'assistant', got {message.get('role')!r}")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        problems.append(f"{key}[0].content: missing or empty content")
    return problems


def _input_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["input: must be an object with a 'messages' list"]
    problems = [f"input: unrecognised key {k!r}" for k in sorted(set(value) - INPUT_KEYS)]
    messages = value.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "input.messages: missing or empty list"]
    for i, message in enumerate(messages):
        where = f"input.messages[{i}]"
        if not isinstance(message, dict):
            problems.append(f"{where}: must be an object")
            continue
        if message.get("role") not in ROLES:
            problems.append(f"{where}.role: unknown role {message.get('role')!r}")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"{where}.content: missing or empty content")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") != "user":
        problems.append("input.messages: the last message must be the user's turn")
    return problems


def preference_problems(record: Any) -> list[str]:
    """Everything wrong with one DPO record (empty when it is usable)."""
    if not isinstance(record, dict):
        return [f"each line must be a JSON object, got {type(record).__name__}"]
    problems = [f"unrecognised key {k!r}" for k in sorted(set(record) - DPO_KEYS)]
    problems += [f"missing {k!r}" for k in sorted(DPO_KEYS - set(record))]
    if "input" in record:
        problems += _input_problems(record["input"])
    for key in ("preferred_output", "non_preferred_output"):
        if key in record:
            problems += _output_problems(key, record[key])
    if not problems and record["preferred_output"] == record["non_preferred_output"]:
        problems.append("preferred_output and non_preferred_output are identical")
    return problems


def load_preferences(path: Path) -> list[dict[str, Any]]:
    """Parse and check every DPO line; raise DataError listing all problems with file:line."""
    return [record for _, record in read_records(path, preference_problems)]


def load_sourced(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Like ``load_preferences``, each record with its ``file:line``."""
    return read_records(path, preference_problems)


def with_system_prompt(record: dict[str, Any], system_prompt: str | None) -> dict[str, Any]:
    """Prepend the study's system prompt to the input when it has none (as chat examples get it)."""
    messages = record["input"]["messages"]
    if not system_prompt or messages[0].get("role") == "system":
        return record
    system = {"role": "system", "content": system_prompt}
    return {**record, "input": {**record["input"], "messages": [system, *messages]}}


def reference_example(source: str, record: dict[str, Any]) -> Example:
    """The pair as a chat example whose reference is the preferred output: what evaluation compares with."""
    return Example((*record["input"]["messages"], *record["preferred_output"]), source)


def make_record(prompt: list[dict[str, Any]], preferred: str, non_preferred: str) -> dict[str, Any]:
    """One OpenAI DPO record: ``prompt`` (ending with the user's turn) and the two answers to it."""
    return {
        "input": {"messages": [{"role": m["role"], "content": m["content"]} for m in prompt]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": non_preferred}],
    }
