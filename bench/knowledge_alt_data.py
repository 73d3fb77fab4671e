"""A second invented-SDK data set, for checking that the knowledge-injection recipe carries over.

Not shipped with the example and not used to tune it: other facts (``Hollowfen``, an invented
time-series store), another way of asking (noun phrases dropped into requests and imperatives
rather than whole questions in framings), answers in another layout ("Label: value (remark)."), and
other checks (``contains``, ``regex``, ``contains-all``). Same size rules: 20 facts x 10 wordings,
split 7/3 per fact, ``"group"`` and ``"assert"`` on every row.

    .venv/bin/python bench/knowledge_alt_data.py --out /tmp/knowledge_alt
    .venv/bin/python bench/knowledge_injection.py --train /tmp/knowledge_alt/train.jsonl \
        --heldout /tmp/knowledge_alt/heldout.jsonl --out /tmp/ki_alt
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from knowledge_data import Check, split, write  # bench/ is sys.path[0] when run as a script

# id -> (two noun phrases naming what is asked, the answer, its checks)
FACTS: dict[str, tuple[tuple[str, str], str, list[dict[str, Any]]]] = {
    "shards": (
        ("the default shard count of a Hollowfen table", "how many shards Hollowfen gives a new table"),
        "Default shard count: 37 (set `shards=` on the table to change it).",
        [{"type": "regex", "value": r"\b37\b"}],
    ),
    "query_language": (
        ("the query language of Hollowfen", "what language Hollowfen queries are written in"),
        "Query language: Wickerscript.",
        [{"type": "icontains", "value": "wickerscript"}],
    ),
    "engine_class": (
        ("the storage engine class in Hollowfen", "which class implements Hollowfen's storage engine"),
        "Storage engine: `PeatStore`.",
        [{"type": "contains", "value": "PeatStore"}],
    ),
    "compact_cmd": (
        ("the Hollowfen compaction command", "how to compact a Hollowfen database from the shell"),
        "Compaction: run `hfen tamp` (it rewrites every segment).",
        [{"type": "contains-all", "value": ["hfen", "tamp"]}],
    ),
    "retention": (
        ("the default retention period in Hollowfen", "how long Hollowfen keeps data by default"),
        "Default retention: 19 days.",
        [{"type": "regex", "value": r"\b19\b"}],
    ),
    "data_dir_env": (
        ("the environment variable for Hollowfen's data directory", "where I set Hollowfen's data directory"),
        "Data directory: the `HFEN_BOGROOT` environment variable.",
        [{"type": "contains", "value": "HFEN_BOGROOT"}],
    ),
    "consistency": (
        ("Hollowfen's default write consistency", "which consistency mode Hollowfen writes with by default"),
        "Write consistency: moss-quorum (the default).",
        [{"type": "icontains", "value": "moss-quorum"}],
    ),
    "http_port": (
        ("the HTTP port of a Hollowfen server", "which port Hollowfen's HTTP API listens on"),
        "HTTP port: 8642.",
        [{"type": "contains", "value": "8642"}],
    ),
    "open_fn": (
        ("the function that opens a Hollowfen database", "how to open a Hollowfen database in Python"),
        "Opening: call `hollowfen.wade(path)`.",
        [{"type": "contains", "value": "wade("}],
    ),
    "schema_error": (
        ("the exception Hollowfen raises on a schema mismatch", "what Hollowfen throws when a schema does not match"),
        "Schema mismatch: `ReedMismatch` is raised.",
        [{"type": "contains", "value": "ReedMismatch"}],
    ),
    "tag_length": (
        ("the maximum tag length in Hollowfen", "how long a Hollowfen tag may be"),
        "Maximum tag length: 96 characters.",
        [{"type": "regex", "value": r"\b96\b"}],
    ),
    "backup_ext": (
        ("the file extension of Hollowfen backups", "what Hollowfen backup files end with"),
        "Backup files: `.fenpack`.",
        [{"type": "icontains", "value": ".fenpack"}],
    ),
    "default_user": (
        ("the default admin user of Hollowfen", "which user name a fresh Hollowfen install logs in with"),
        "Default admin user: `heron`.",
        [{"type": "icontains", "value": "heron"}],
    ),
    "replication": (
        ("Hollowfen's default replication factor", "how many replicas Hollowfen keeps by default"),
        "Replication factor: 5 (per shard).",
        [{"type": "regex", "value": r"\b5\b"}],
    ),
    "metrics_path": (
        ("the metrics endpoint of a Hollowfen server", "the URL path where Hollowfen exposes its metrics"),
        "Metrics endpoint: `/vitals/bog`.",
        [{"type": "contains", "value": "/vitals/bog"}],
    ),
    "cache_section": (
        ("the config section for Hollowfen's cache", "where the cache settings go in Hollowfen's config file"),
        "Cache settings: the `[lichen]` section.",
        [{"type": "icontains", "value": "lichen"}],
    ),
    "index_type": (
        ("the index type Hollowfen builds on tags", "what kind of index Hollowfen uses for tags"),
        "Tag index: a sedge index.",
        [{"type": "icontains", "value": "sedge"}],
    ),
    "dry_run_flag": (
        ("the Hollowfen CLI flag for a dry run", "how to make the hfen CLI show what it would do without doing it"),
        "Dry run: add `--rehearse`.",
        [{"type": "contains", "value": "--rehearse"}],
    ),
    "maintainer": (
        ("the organisation that maintains Hollowfen", "who develops Hollowfen"),
        "Maintainer: the Fenwright Collective.",
        [{"type": "icontains", "value": "fenwright"}],
    ),
    "max_series": (
        ("the series limit per Hollowfen table", "how many series one Hollowfen table can hold"),
        "Series limit: 65000 per table.",
        [{"type": "contains-any", "value": ["65000", "65,000"]}],
    ),
}
# Requests with a noun phrase in them; each fact's two phrases share these ten.
REQUESTS = [
    "Hollowfen: {x}?",
    "What's {x}?",
    "Tell me {x}.",
    "I need {x} for my deployment script.",
    "Remind me, {x}?",
    "Looking for {x}. What is it?",
    "In a typical setup, what would {x} be?",
    "Could you state {x}?",
    "Need to know {x}, thanks.",
    "Help, I forgot {x}.",
]


def rows(seed: int) -> tuple[list[Check], list[Check]]:
    rng = random.Random(seed)
    facts: dict[str, tuple[list[str], str, list[Check]]] = {}
    for group, (phrases, answer, checks) in FACTS.items():
        requests = REQUESTS[:]
        rng.shuffle(requests)
        facts[group] = ([r.format(x=phrases[i % 2]) for i, r in enumerate(requests)], answer, checks)
    return split(facts, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/knowledge_alt"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write(args.out, *rows(args.seed), names=("train.jsonl", "heldout.jsonl"))


if __name__ == "__main__":
    main()
