"""Where a training step's time goes: torch.profiler over the harness's own LoRA (or full) steps.

Runs the harness's trainer for ``--warmup`` steps, then profiles a plain loop over the same
packed batches (the benchmark shows that loop within a few percent of the harness), and prints
the operators by self CPU time, grouped into matmuls, attention, elementwise, the loss and the
optimizer.

    .venv/bin/python bench/profile_step.py [--method lora|full] [--steps 4] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import CountingCollator, study_config, train_step, trial_params

from harness.backends.local.backend import LocalBackend
from harness.device import use_bf16

GROUPS = {
    "matmul": ("mm", "addmm", "bmm", "matmul", "linear"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "loss": ("cross_entropy", "log_softmax", "nll_loss"),
    "optimizer": ("_foreach", "adam"),
    "dtype casts": ("to_copy", "copy_", "_to_copy"),
}


def group_of(name: str) -> str:
    bare = name.removeprefix("aten::").lower()
    for group, keys in GROUPS.items():
        if any(key in bare for key in keys):
            return group
    return "other (norms, activations, indexing, framework)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="smollm2")
    parser.add_argument("--train-file", default="experiments/data/programmer_train.jsonl")
    parser.add_argument("--validation-file", default="experiments/data/programmer_heldout.jsonl")
    parser.add_argument("--method", default="lora", choices=["lora", "full"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="harness-profile-"))
    backend = LocalBackend(study_config(args, work))
    backend.prepare()
    params = trial_params(args, args.method)
    model = backend.trial_model(params)
    trainer = backend.trial_trainer(backend.plan(params), model, work, [], quiet=True)
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.create_optimizer()
    optimizer = trainer.optimizer
    bf16 = use_bf16(args.precision)
    loader = iter(trainer.get_train_dataloader())
    model.train()

    def step() -> None:
        train_step(model, optimizer, next(loader), bf16)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = time.perf_counter() - start
    unprofiled = sum(counter.tokens[args.warmup :])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    tokens = sum(counter.tokens[args.warmup + args.steps :])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    groups: dict[str, float] = defaultdict(float)
    for event in events:
        groups[group_of(event.key)] += event.self_cpu_time_total
    print(f"unprofiled: {unprofiled} tokens in {wall:.2f} s, {unprofiled / wall:.0f} tokens/s")
    print(f"{args.method}, bf16={bf16}, {tokens} tokens over {args.steps} steps, {total / 1e6:.2f} s self CPU")
    for group, spent in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {group:<48} {spent / 1e6:7.2f} s  {spent / total:6.1%}")


if __name__ == "__main__":
    main()
