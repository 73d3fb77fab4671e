"""Augmented training sets: EDA, paraphrase or back-translation copies of each example's user turns.

The originals always come first and unchanged; each original gets up to ``factor`` copies whose
user turns are rewritten (system and assistant turns never change: the answers are what a
fine-tune learns). A copy that changes nothing, repeats an earlier copy or whose rewrite is refused
is left out, and counted. Copies are plain chat records (OpenAI's upload format has no room for
metadata); ``write_augmented`` puts the provenance in a sidecar file instead.

Deterministic: each copy's randomness (EDA) or request seed (rewrites) comes from the seed, the
example's content and the copy number, so the same input gives the same output in any order.
Studies call ``cached_augmentation``: built once per (training content, method, settings) and
kept under the harness cache dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.chat import Example, digest, load_jsonl, to_record
from harness.endpoints.answerer import Clients, open_clients, run_bounded
from harness.settings.synthesis import AugmentConfig
from harness.synthesis.eda import OPERATIONS, Synonyms, augment_text
from harness.synthesis.rewrite import backtranslate, paraphrase
from harness.synthesis.synth import write_jsonl

METHODS: tuple[str, ...] = ("eda", "paraphrase", "backtranslate")
# Part of every cache key: a change to how copies are made makes old caches stale.
AUGMENT_VERSION = 1
Rewrite = Callable[[str, int], "str | None"]  # (user text, seed) -> rewritten text or None


@dataclass(frozen=True)
class Augmented:
    examples: list[Example]  # originals, then copies
    origins: list[int]  # for each copy (in order), the index of its original
    method: str
    skipped: int  # copies asked for but not made (no change, repeated, rewrite refused or failed)

    @property
    def copies(self) -> int:
        return len(self.origins)


def copy_seed(config: AugmentConfig, example: Example, copy: int) -> str:
    return f"{config.seed}:{digest([example])}:{copy}"


def _int_seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def _with_users(example: Example, change: Callable[[str], str | None], tag: str) -> Example | None:
    """The example with every user turn changed; None when no turn changed."""
    messages, changed = [], False
    for message in example.messages:
        new = change(message["content"]) if message["role"] == "user" else None
        changed |= new is not None and new != message["content"]
        messages.append({**message, "content": new} if new is not None else dict(message))
    # A copy asks the same question: it keeps the original's group and checks.
    return dataclasses.replace(example, messages=tuple(messages), source=f"{example.source}+{tag}") if changed else None


def eda_copy(example: Example, copy: int, config: AugmentConfig, synonyms: Synonyms) -> Example | None:
    """One EDA operation, drawn at random; when it cannot change anything (no word has a synonym),
    the next one in the drawn order is tried."""
    rng = random.Random(copy_seed(config, example, copy))
    for operation in rng.sample(OPERATIONS, len(OPERATIONS)):
        made = _with_users(
            example, lambda text, op=operation: augment_text(text, op, config.eda_alpha, rng, synonyms), f"eda{copy}"
        )
        if made is not None:
            return made
    return None


def rewrite_copy(example: Example, copy: int, config: AugmentConfig, rewrite: Rewrite, tag: str) -> Example | None:
    seed = _int_seed(copy_seed(config, example, copy))
    refused = []

    def change(text: str) -> str | None:
        new = rewrite(text, seed)
        refused.append(new is None)
        return new

    made = _with_users(example, change, f"{tag}{copy}")
    return None if any(refused) else made


def assemble(
    examples: list[Example], copies: dict[tuple[int, int], Example | None], method: str, factor: int
) -> Augmented:
    """Pure: originals, then each example's distinct new copies in (example, copy) order."""
    out, origins, skipped = list(examples), [], 0
    for i, example in enumerate(examples):
        seen = {json.dumps(example.messages, sort_keys=True)}
        for k in range(factor):
            made = copies.get((i, k))
            key = json.dumps(made.messages, sort_keys=True) if made is not None else None
            if made is None or key in seen:
                skipped += 1
                continue
            seen.add(key)
            out.append(made)
            origins.append(i)
    return Augmented(out, origins, method, skipped)


def augment(
    examples: list[Example],
    method: str,
    config: AugmentConfig,
    *,
    synonyms: Synonyms | None = None,
    clients: Clients | None = None,
    advance: Callable[[], None] = lambda: None,
) -> Augmented:
    """``factor`` copies per example by ``method``; rewrites go through ``clients`` concurrently."""
    jobs = [(i, k) for i in range(len(examples)) for k in range(config.factor)]
    copies: dict[tuple[int, int], Example | None] = {}
    if method == "eda":
        words = synonyms or (lambda word: ())
        for i, k in jobs:
            copies[i, k] = eda_copy(examples[i], k, config, words)
            advance()
        return assemble(examples, copies, method, config.factor)
    if method not in METHODS or clients is None:
        raise ValueError(f"augmentation {method!r} needs one of {METHODS} (and an endpoint for rewrites)")
    endpoint = clients

    def ask(messages: list[dict[str, str]], seed: int) -> str:
        return endpoint.complete(messages, seed).text

    def rewrite(text: str, seed: int) -> str | None:
        if method == "paraphrase":
            return paraphrase(text, ask, seed)
        return backtranslate(text, ask, seed, config.pivot_language)

    def done(job: tuple[int, int], outcome: Example | BaseException | None) -> None:
        copies[job] = None if isinstance(outcome, BaseException) else outcome
        advance()

    run_bounded(
        jobs,
        lambda job: rewrite_copy(examples[job[0]], job[1], config, rewrite, method),
        config.endpoint.concurrency,
        done,
    )
    return assemble(examples, copies, method, config.factor)


@contextlib.contextmanager
def method_tools(method: str, config: AugmentConfig) -> Iterator[dict[str, Any]]:
    """What ``method`` needs: the offline synonym lexicon (EDA), or endpoint clients (rewrites)."""
    if method == "eda":
        from harness.synthesis.lexicon import load_synonyms

        yield {"synonyms": load_synonyms()}
        return
    with open_clients(config.endpoint) as clients:
        yield {"clients": clients}


def cache_key(examples: list[Example], method: str, config: AugmentConfig) -> str:
    """Training content + method + every setting that decides the copies (never a key)."""
    decides: dict[str, Any] = {
        "train": digest(examples),
        "method": method,
        "factor": config.factor,
        "seed": config.seed,
        "version": AUGMENT_VERSION,
    }
    if method == "eda":
        decides["alpha"] = config.eda_alpha
    else:
        decides["endpoint"] = config.endpoint.identity()
        decides["pivot"] = config.pivot_language if method == "backtranslate" else None
    return hashlib.sha256(json.dumps(decides, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(examples: list[Example], method: str, config: AugmentConfig, cache_dir: Path) -> Path:
    return cache_dir / "augment" / f"{method}-{cache_key(examples, method, config)}.jsonl"


def check_rewrites(
    examples: list[Example], methods: Iterable[str], config: AugmentConfig, cache_dir: Path, setting: str
) -> None:
    """A rewrite a study has still to build needs its endpoint: a missing key or llama.cpp fails
    here, before any run, not inside the first trial that draws it (a cached set needs neither)."""
    from harness.endpoints.client import api_key
    from harness.endpoints.llama_server import require_llama_cpp

    for method in methods:
        if method in METHODS and method != "eda" and not cache_path(examples, method, config, cache_dir).exists():
            api_key(config.endpoint)
            require_llama_cpp(config.endpoint, setting)
            return


def cached_augmentation(
    examples: list[Example], method: str, config: AugmentConfig, cache_dir: Path
) -> tuple[list[Example], Path, bool]:
    """The augmented set (originals first), its cache file, and whether this call built it."""
    path = cache_path(examples, method, config, cache_dir)
    if path.exists():
        return load_jsonl(path), path, False
    with method_tools(method, config) as tools:
        made = augment(examples, method, config, **tools)
    write_jsonl(path, [{"messages": list(e.messages)} for e in made.examples])
    return load_jsonl(path), path, True


def write_augmented(made: Augmented, source: Path, out: Path, config: AugmentConfig) -> Path:
    """``out`` (chat JSONL; a copy keeps its original's checks and group) and its sidecar
    ``OUT.augment.json``: which line came from where."""
    write_jsonl(out, [to_record(e) for e in made.examples])
    originals = len(made.examples) - made.copies
    sidecar = out.with_name(out.name + ".augment.json")
    provenance = {
        "source": str(source),
        "method": made.method,
        "factor": config.factor,
        "seed": config.seed,
        "originals": originals,
        "copies": made.copies,
        "skipped": made.skipped,
        # 1-based lines of `out`: every copy's line and the line of its original (originals come first,
        # in input order, so original i is line i + 1).
        "copy_of": {str(originals + n + 1): origin + 1 for n, origin in enumerate(made.origins)},
    }
    sidecar.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return sidecar
