from __future__ import annotations

import threading
from pathlib import Path

from harness.evaluation.judge_cache import JudgeCache, cache_key


def test_round_trip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    key = cache_key("judge", "abc", "q", "r", "a")
    with JudgeCache(path) as cache:
        assert cache.get(key) is None
        cache.put(key, {"overall": 50.0}, judge="judge", rubric_hash="abc")
        assert cache.get(key) == {"overall": 50.0}
    with JudgeCache(path) as reopened:
        assert reopened.get(key) == {"overall": 50.0}
        assert len(reopened) == 1


def test_key_covers_every_input() -> None:
    base = ("judge", "abc", "q", "r", "a")
    keys = {cache_key(*base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] += "!"
        keys.add(cache_key(*changed))
    assert len(keys) == len(base) + 1
    # No ambiguity from concatenation.
    assert cache_key("j", "h", "ab", "c", "") != cache_key("j", "h", "a", "bc", "")


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "cache.sqlite")

    def work(n: int) -> None:
        for i in range(20):
            key = cache_key("j", "h", str(n), str(i), "")
            cache.put(key, {"n": n, "i": i}, judge="j", rubric_hash="h")
            assert cache.get(key) == {"n": n, "i": i}

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 160
    cache.close()
