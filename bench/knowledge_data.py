"""Write the knowledge-injection example's data: facts about an invented SDK no model can know.

``Quorrel`` does not exist: its port, class names, flags and file names are made up, so the untuned
base model cannot answer them and a fine-tune that does has learned them from the training file.
Each fact is one question asked in 10 wordings (a few hand-written phrasings of the question, each
in a couple of framings), with one short reference answer; the wordings of each fact are shuffled
with a fixed seed and split 7/3, so every held-out prompt is an unseen wording of a trained fact.
Every row carries ``"group"`` (the fact id) and ``"assert"`` (promptfoo's vocabulary: the answer
must name the fact's value), which ``harness data check`` validates.

Written by this script, not by ``harness data synth`` / ``data augment``: the packaged SmolLM2-135M
cannot write answers about facts it does not know, and its paraphrases (and EDA's synonym swaps)
changed or dropped the SDK's names (see the README, "Knowledge injection").

    .venv/bin/python bench/knowledge_data.py            # rewrites experiments/data/sdk_{train,heldout}.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_FACT, HELDOUT_PER_FACT = 10, 3

# id -> (value the answer must contain, reference answer, phrasings of the question)
FACTS: dict[str, tuple[str, str, list[str]]] = {
    "broker_port": (
        "7413",
        "The Quorrel broker listens on port 7413 by default.",
        [
            "which port does the Quorrel broker listen on",
            "what is the default port of the Quorrel broker",
            "on what port does a Quorrel broker accept connections",
            "what port number should I open for the Quorrel broker",
        ],
    ),
    "client_class": (
        "QrlHarbor",
        "The main client class of the Quorrel SDK is `QrlHarbor`.",
        [
            "what is the main client class in the Quorrel SDK",
            "which class do I instantiate to talk to Quorrel",
            "what class is the entry point of the Quorrel Python SDK",
            "what is the name of the Quorrel client class",
        ],
    ),
    "package_name": (
        "quorrel-kit",
        "Install it with `pip install quorrel-kit`.",
        [
            "how do I install the Quorrel SDK",
            "what is the pip package name of the Quorrel SDK",
            "which package do I pip install to get Quorrel",
            "what do I pass to pip to install Quorrel",
        ],
    ),
    "token_env": (
        "QRL_VAULT_TOKEN",
        "Quorrel reads the API key from the `QRL_VAULT_TOKEN` environment variable.",
        [
            "which environment variable holds the Quorrel API key",
            "where does the Quorrel SDK read its API key from",
            "what environment variable do I set for Quorrel authentication",
            "how do I give Quorrel my API token without hardcoding it",
        ],
    ),
    "retry_flag": (
        "--bounce-back",
        "Pass `--bounce-back` to turn on automatic retries.",
        [
            "which command-line flag turns on retries in Quorrel",
            "how do I enable automatic retries from the Quorrel CLI",
            "what flag makes the Quorrel CLI retry failed requests",
            "what is the Quorrel CLI option for retrying",
        ],
    ),
    "config_file": (
        "tessel.cfg",
        "Quorrel reads its settings from a file named `tessel.cfg`.",
        [
            "what is the name of the Quorrel configuration file",
            "which file does Quorrel read its settings from",
            "where do I put Quorrel configuration, which file name",
            "what config file does the Quorrel SDK look for",
        ],
    ),
    "timeout": (
        "47",
        "The default request timeout in Quorrel is 47 seconds.",
        [
            "what is the default request timeout in Quorrel",
            "how long does a Quorrel request wait before timing out",
            "after how many seconds does a Quorrel call time out by default",
            "what timeout does the Quorrel client use if I set none",
        ],
    ),
    "max_batch": (
        "312",
        "A Quorrel batch holds at most 312 messages.",
        [
            "what is the maximum batch size in Quorrel",
            "how many messages fit in one Quorrel batch",
            "what is the largest number of messages a Quorrel batch can carry",
            "how big can a batch be when sending with Quorrel",
        ],
    ),
    "log_env": (
        "QRL_CHATTER",
        "Set the `QRL_CHATTER` environment variable to change Quorrel's log verbosity.",
        [
            "how do I change the log level of Quorrel",
            "which environment variable controls Quorrel logging",
            "how can I make Quorrel log more verbosely",
            "what variable sets the verbosity of Quorrel logs",
        ],
    ),
    "auth_method": (
        "knock()",
        "Call `harbor.knock()` to authenticate a Quorrel session.",
        [
            "which method authenticates a Quorrel session",
            "how do I log in with the Quorrel client",
            "what do I call to authenticate against Quorrel",
            "which client method performs Quorrel authentication",
        ],
    ),
    "expired_error": (
        "StaleBadgeError",
        "Quorrel raises `StaleBadgeError` when the token has expired.",
        [
            "what exception does Quorrel raise when my token expires",
            "which error do I get from Quorrel with an expired token",
            "what should I catch when a Quorrel token is no longer valid",
            "what is the Quorrel exception for expired credentials",
        ],
    ),
    "protocol": (
        "Lumen-5",
        "Quorrel speaks the Lumen-5 wire protocol.",
        [
            "which wire protocol does Quorrel use",
            "what protocol version do Quorrel clients speak",
            "what is the name of the Quorrel network protocol",
            "which protocol does the Quorrel broker talk",
        ],
    ),
    "cli_tool": (
        "mossctl",
        "The Quorrel command-line tool is called `mossctl`.",
        [
            "what is the Quorrel command-line tool called",
            "which CLI ships with the Quorrel SDK",
            "what command do I run to manage Quorrel from a terminal",
            "what is the name of the Quorrel CLI binary",
        ],
    ),
    "default_region": (
        "fjord-3",
        "The default Quorrel region is `fjord-3`.",
        [
            "what is the default region in Quorrel",
            "which region does Quorrel use when none is given",
            "where are Quorrel resources created by default, which region",
            "what region name is Quorrel's default",
        ],
    ),
    "handler_decorator": (
        "@on_ripple",
        "Decorate a function with `@on_ripple` to register it as a Quorrel event handler.",
        [
            "which decorator registers an event handler in Quorrel",
            "how do I subscribe a function to Quorrel events",
            "what decorator marks a Quorrel handler function",
            "how do I register a callback for Quorrel events",
        ],
    ),
    "cache_dir": (
        "~/.quorrel/nest",
        "Quorrel caches downloads in `~/.quorrel/nest`.",
        [
            "where does Quorrel keep its cache",
            "which directory does the Quorrel SDK cache files in",
            "what is the path of the Quorrel cache folder",
            "where on disk does Quorrel store cached data",
        ],
    ),
    "compression": (
        "zephyr",
        "Quorrel compresses payloads with the zephyr codec by default.",
        [
            "which compression codec does Quorrel use by default",
            "how does Quorrel compress payloads",
            "what is the default Quorrel compression algorithm",
            "what codec compresses Quorrel messages",
        ],
    ),
    "max_retries": (
        "9",
        "Quorrel retries a failed request at most 9 times.",
        [
            "how many times does Quorrel retry a failed request",
            "what is the maximum number of Quorrel retries",
            "how often will the Quorrel client retry before giving up",
            "what is the Quorrel retry limit",
        ],
    ),
    "heartbeat": (
        "1500",
        "A Quorrel client sends a heartbeat every 1500 milliseconds.",
        [
            "how often does a Quorrel client send heartbeats",
            "what is the Quorrel heartbeat interval",
            "at what interval does Quorrel ping the broker",
            "how many milliseconds between Quorrel heartbeats",
        ],
    ),
    "license": (
        "Tidewater",
        "Quorrel is released under the Tidewater Public License.",
        [
            "what license is Quorrel released under",
            "under which license can I use the Quorrel SDK",
            "what is the software license of Quorrel",
            "which open source license covers Quorrel",
        ],
    ),
    "sandbox_host": (
        "kelp.quorrel.dev",
        "The Quorrel sandbox runs at `kelp.quorrel.dev`.",
        [
            "what is the host name of the Quorrel sandbox",
            "where is the Quorrel test sandbox hosted",
            "which host do I point at to try Quorrel without a real account",
            "what is the address of Quorrel's sandbox environment",
        ],
    ),
    "async_send": (
        "drift_send",
        "Use `harbor.drift_send()` to send a message without waiting.",
        [
            "how do I send a message asynchronously with Quorrel",
            "which method sends a Quorrel message without blocking",
            "what is the non-blocking send call in Quorrel",
            "how can Quorrel send messages in the background",
        ],
    ),
    "codename": (
        "Bramblewood",
        "The current Quorrel release is codenamed Bramblewood.",
        [
            "what is the codename of the current Quorrel release",
            "what is the latest Quorrel version called",
            "which codename does this Quorrel release have",
            "what name was given to the newest Quorrel release",
        ],
    ),
    "health_check": (
        "mossctl sniff",
        "Run `mossctl sniff` to check that Quorrel can reach the broker.",
        [
            "how do I check connectivity to the Quorrel broker",
            "which command tests whether Quorrel can reach its broker",
            "how do I verify my Quorrel connection from the terminal",
            "what is the Quorrel health check command",
        ],
    ),
}
# Framings of a phrasing; each fact takes 10 distinct (phrasing, framing) pairs.
FRAMINGS = [
    "{Q}?",
    "Quick question: {q}?",
    "I'm new to Quorrel. {Q}?",
    "Can you tell me {q}?",
    "{Q}? Please answer briefly.",
    "Hi! {Q}?",
    "I'm writing a service with the Quorrel SDK: {q}?",
    "Do you know {q}?",
]


def wordings(phrasings: list[str], rng: random.Random) -> list[str]:
    """10 distinct prompts of one fact: every phrasing at least twice, each time in another framing."""
    pairs = [(p, f) for p in phrasings for f in FRAMINGS]
    rng.shuffle(pairs)
    chosen: list[tuple[str, str]] = []
    for phrasing in phrasings * PER_FACT:
        pick = next((pf for pf in pairs if pf[0] == phrasing and pf not in chosen), None)
        if pick is not None and len(chosen) < PER_FACT:
            chosen.append(pick)
    return [f.format(q=p, Q=p[0].upper() + p[1:]) for p, f in chosen]


Check = dict[str, object]


def split(facts: dict[str, tuple[list[str], str, list[Check]]], rng: random.Random) -> tuple[list[Check], list[Check]]:
    """Rows of every fact (its prompts, answer and checks), 3 of each fact's 10 prompts held out."""
    train: list[Check] = []
    heldout: list[Check] = []
    for group, (prompts, answer, checks) in facts.items():
        for index, prompt in enumerate(prompts):
            row = {
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                "group": group,
                "assert": checks,
            }
            (heldout if index < HELDOUT_PER_FACT else train).append(row)
    rng.shuffle(train)
    return train, heldout


def rows(seed: int) -> tuple[list[Check], list[Check]]:
    rng = random.Random(seed)
    facts: dict[str, tuple[list[str], str, list[Check]]] = {}
    for group, (value, answer, phrasings) in FACTS.items():
        prompts = wordings(phrasings, rng)
        rng.shuffle(prompts)
        facts[group] = (prompts, answer, [{"type": "icontains", "value": value}])
    return split(facts, rng)


def write(out: Path, train: list[Check], heldout: list[Check], names: tuple[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, records in zip(names, (train, heldout), strict=True):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"{len(train) + len(heldout)} rows: {len(train)} for training, {len(heldout)} held out, in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "data")
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args()
    write(args.out, *rows(args.seed), names=("sdk_train.jsonl", "sdk_heldout.jsonl"))


if __name__ == "__main__":
    main()
