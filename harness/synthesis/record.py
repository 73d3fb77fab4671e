"""A synthesis as an MLflow run: the spec (params and artifact), counts per filter, the dataset.

Nothing secret can reach the run: keys are only ever read from the environment at request time,
and the spec names the variable, never its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.chat import digest, load_jsonl
from harness.redaction import masked
from harness.settings.synthesis import SynthSpec
from harness.synthesis.synth import SynthResult
from harness.tracking import SYNTHESIS_ROLE, TAG_DATASET, TAG_ROLE, Tracker, flatten


def spec_params(spec: SynthSpec) -> dict[str, Any]:
    """Flat params: the scalar settings, and the personas as names and counts (the whole spec is
    the ``synth_spec.json`` artifact)."""
    params: dict[str, Any] = {
        "name": spec.name,
        "system_prompt": spec.system_prompt,
        "question_prompt": spec.question_prompt,
        "answer_instructions": spec.answer_instructions,
        "n_answer_examples": len(spec.answer_examples),
        "questions_per_topic": spec.questions_per_topic,
        "seed": spec.seed,
        "personas": ",".join(p.name for p in spec.personas),
        "n_personas": len(spec.personas),
        "n_topics": sum(len(p.topics) for p in spec.personas),
    }
    params |= dict(flatten("endpoint", masked(spec.endpoint.model_dump(mode="json"))))
    params |= dict(flatten("filters", spec.filters.model_dump(mode="json")))
    return params


def dataset_rows(result: SynthResult) -> list[dict[str, Any]]:
    return [
        {"persona": r["persona"], "topic": r["topic"], "question": r["question"], "answer": r["answer"]}
        for r in result.records
    ]


def log_synthesis(spec: SynthSpec, out: Path, result: SynthResult) -> str:
    """One run in ``spec.mlflow.experiment``; returns its id."""
    tracker = Tracker(spec.mlflow.tracking_uri, spec.mlflow.experiment)
    examples = load_jsonl(out) if result.records else []
    run_id = tracker.run(spec.name, {TAG_ROLE: SYNTHESIS_ROLE, TAG_DATASET: digest(examples)})
    with tracker.closing(run_id):
        tracker.log_params(run_id, spec_params(spec))
        tracker.log_dict(run_id, masked(spec.model_dump(mode="json")), "synth_spec.json")
        tracker.log_metrics(run_id, {f"synth/{name}": float(n) for name, n in result.counts().items()})
        tracker.log_dataset(run_id, dataset_rows(result), source=str(out.resolve()), name=out.name, context="training")
        tracker.log_artifact(run_id, out, "data")
    return run_id
