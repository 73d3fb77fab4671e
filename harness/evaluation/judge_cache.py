"""A SQLite cache of judge scores, so a repeated evaluation costs no calls."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judge_scores (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    rubric_hash TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(judge: str, rubric_hash: str, question: str, reference: str, answer: str) -> str:
    """sha256 over every input that can change a score."""
    payload = json.dumps([judge, rubric_hash, question, reference, answer], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgeCache:
    """Key -> JSON value store; one connection shared by worker threads behind a lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the judge's worker threads share it, serialised by _lock.
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            if str(path) != ":memory:":
                # WAL lets parallel trials (separate processes) read while one writes.
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM judge_scores WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any], *, judge: str, rubric_hash: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO judge_scores (key, judge, rubric_hash, value, created) VALUES (?, ?, ?, ?, ?)",
                (key, judge, rubric_hash, json.dumps(value), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM judge_scores").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> JudgeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
