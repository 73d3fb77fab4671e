"""Concurrent promotions take turns under a registered-model tag lock, on one real SQLite store."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from harness.lifecycle import locking, registry
from harness.lifecycle.locking import LOCK_TAG, TagLock, is_free, parse
from tests.test_registry import aliases, make_baseline_run, make_trial_run, registry_config


def test_lock_values_parse_and_expire() -> None:
    assert parse("abc:12.5") == ("abc", 12.5)
    assert parse(None) is None and parse("garbage") is None and parse("x:soon") is None
    assert is_free(None, "me", 100.0) and is_free(("me", 200.0), "me", 100.0)
    assert not is_free(("other", 200.0), "me", 100.0) and is_free(("other", 99.0), "me", 100.0)


def slow_judging(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Widen the read-compare window, so that two promotions without a lock surely overlap in it."""
    judge = registry._judge

    def slow(*args: Any, **kwargs: Any) -> bool:
        wins = judge(*args, **kwargs)
        time.sleep(seconds)
        return wins

    monkeypatch.setattr(registry, "_judge", slow)


def promote_at_once(config: Any, run_ids: list[str]) -> list[registry.PromotionResult]:
    results: dict[str, registry.PromotionResult] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(run_ids))

    def promote(run_id: str) -> None:
        start.wait()
        try:
            results[run_id] = registry.promote(config, run_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(r,)) for r in run_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return [results[r] for r in run_ids]


def setup_champion(study_yaml: Path, tiny_llama_dir: Path) -> tuple[Any, MlflowClient, str, str]:
    config = registry_config(study_yaml)
    client = MlflowClient(config.mlflow.tracking_uri)
    first = make_trial_run(config, 0, {"eval_loss": 1.0}, model_dir=tiny_llama_dir)
    good = make_trial_run(config, 1, {"eval_loss": 0.5}, model_dir=tiny_llama_dir)
    best = make_trial_run(config, 2, {"eval_loss": 0.3}, model_dir=tiny_llama_dir)
    make_baseline_run(config, {"eval_loss": 2.0})  # the first champion must beat the untuned baseline
    assert registry.promote(config, first).promoted  # version 1 is the champion
    return config, client, good, best


def consistent(good: registry.PromotionResult, best: registry.PromotionResult, held: dict[str, str]) -> bool:
    """Whichever went first, the second compared with the champion the first left behind."""
    if good.promoted:  # good first (over version 1), then best over good
        return best.champion_version == good.candidate_version == held["previous"]
    return good.champion_version == best.candidate_version and best.champion_version == held["previous"] == "1"


def test_two_promotions_at_once_take_turns(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, client, good, best = setup_champion(study_yaml, tiny_llama_dir)
    slow_judging(monkeypatch, 1.0)
    results = promote_at_once(config, [good, best])
    held = aliases(client, "tiny")
    champion = client.get_model_version_by_alias("tiny", "champion")
    assert champion.run_id == best and str(champion.version) == results[1].candidate_version  # the better one won
    assert consistent(*results, held), (results, held)
    assert LOCK_TAG not in client.get_registered_model("tiny").tags  # released


def test_without_the_lock_the_same_schedule_interleaves(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the lock prevents: both read champion 1, both move the aliases over it."""
    config, client, good, best = setup_champion(study_yaml, tiny_llama_dir)
    slow_judging(monkeypatch, 1.0)

    @contextlib.contextmanager
    def no_lock(client: Any, name: str) -> Iterator[Any]:
        yield type("Held", (), {"holds": lambda self: True})()

    monkeypatch.setattr(registry, "promotion_lock", no_lock)
    # Registration points MLflow's process-global fluent URI at the store for a moment: threads of
    # one process take turns there (separate processes, the real case, do not share it).
    register, one_at_a_time = registry.register, threading.Lock()

    def register_in_turn(*args: Any, **kwargs: Any) -> Any:
        with one_at_a_time:
            return register(*args, **kwargs)

    monkeypatch.setattr(registry, "register", register_in_turn)
    results = promote_at_once(config, [good, best])
    assert all(r.promoted and r.champion_version == "1" for r in results)
    assert not consistent(*results, aliases(client, "tiny"))


def test_a_live_lock_makes_a_promotion_wait_then_give_up(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, client, good, _ = setup_champion(study_yaml, tiny_llama_dir)
    monkeypatch.setattr(locking, "WAIT_SECONDS", 1.0)
    client.set_registered_model_tag("tiny", LOCK_TAG, f"someone:{time.time() + 60}")
    with pytest.raises(registry.RegistryError, match=r"another promotion of tiny holds harness\.promotion_lock"):
        registry.promote(config, good)
    assert aliases(client, "tiny") == {"champion": "1"}
    assert client.get_registered_model("tiny").tags[LOCK_TAG].startswith("someone:")  # not ours to delete


def test_an_expired_lock_is_taken_over(study_yaml: Path, tiny_llama_dir: Path) -> None:
    config, client, good, _ = setup_champion(study_yaml, tiny_llama_dir)
    client.set_registered_model_tag("tiny", LOCK_TAG, f"crashed:{time.time() - 1}")
    assert registry.promote(config, good).promoted
    assert aliases(client, "tiny") == {"champion": "2", "previous": "1"}
    assert LOCK_TAG not in client.get_registered_model("tiny").tags


def test_the_lock_is_released_when_the_promotion_fails(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, client, good, _ = setup_champion(study_yaml, tiny_llama_dir)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("registry went away")

    monkeypatch.setattr(MlflowClient, "create_model_version", broken)
    with pytest.raises(RuntimeError, match="went away"):
        registry.promote(config, good)
    assert LOCK_TAG not in client.get_registered_model("tiny").tags


def test_a_held_lock_is_renewed_past_its_ttl(
    study_yaml: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client, _, _ = setup_champion(study_yaml, tiny_llama_dir)
    monkeypatch.setattr(locking, "TTL_SECONDS", 0.9)
    monkeypatch.setattr(locking, "SETTLE_SECONDS", 0.05)
    with locking.promotion_lock(client, "tiny") as lock:
        time.sleep(2.0)  # over twice the TTL: only renewal keeps it
        assert lock.holds()
        other = TagLock(client, "tiny")
        assert not other.try_acquire()
    assert LOCK_TAG not in client.get_registered_model("tiny").tags


@pytest.mark.slow
def test_four_processes_promoting_at_once_leave_one_champion_and_a_true_previous(
    study_yaml: Path, tiny_llama_dir: Path
) -> None:
    import os
    import subprocess
    import sys

    config, client, _, _ = setup_champion(study_yaml, tiny_llama_dir)  # version 1 (eval_loss 1.0) holds it
    candidates = enumerate((0.8, 0.6, 0.4, 0.2))
    losses = {make_trial_run(config, 10 + i, {"eval_loss": x}, model_dir=tiny_llama_dir): x for i, x in candidates}
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "promote", str(study_yaml), "--run", run_id],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for run_id in losses
    ]
    outcomes = [(p.wait(timeout=600), p.stderr.read().decode() if p.stderr else "") for p in processes]
    assert all(code in (0, 1) for code, _ in outcomes), outcomes  # promoted or refused, never an error

    held = aliases(client, config.registry_name)
    champion = client.get_model_version(config.registry_name, held["champion"])
    assert losses.get(champion.run_id) == 0.2  # the best candidate, whatever the order
    previous = client.get_model_version(config.registry_name, held["previous"])
    assert client.get_run(previous.run_id).data.metrics["eval_loss"] > 0.2  # the one it replaced
    versions = client.search_model_versions(f"name='{config.registry_name}'")
    assert len({v.run_id for v in versions}) == len(versions)  # no run registered twice
    assert client.get_registered_model(config.registry_name).tags.get(LOCK_TAG) is None  # every lock released
