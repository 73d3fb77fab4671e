"""Specs of data synthesis (``harness data synth``) and augmentation (``data augment``, ``data.augment``).

Kept light like every settings module: no openai, torch or MLflow imports. Validators raise and
never change a value, so a spec means exactly what its file says.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.endpoints.endpoint import Concurrency, MaxTokens, OpenAIEndpoint, Seconds, Temperature
from harness.settings.frozen import Frozen

AugmentMethod = Literal["eda", "paraphrase", "backtranslate"]
AUGMENTATIONS: tuple[str, ...] = ("none", "eda", "paraphrase", "backtranslate")

# Seed 000 dropped the default assistant greeting and sentences about "a question"; FACTS.md saw
# SmolLM2 answer a generation prompt with "That's a great question... What do you need?".
DEFAULT_REJECT_PATTERNS: tuple[str, ...] = (
    r"^\s*(hello|hi|hey|greetings)\b",
    r"how (can|may) i (help|assist)",
    r"\bi('d| would) be (happy|glad) to help\b",
    r"\b(that'?s|what) a (great|good|interesting) question\b",
    r"\bwhat (do you need|would you like)\b",
    r"\bwould you like (to know|me to)\b",
    r"\bas an ai\b",
)
DEFAULT_QUESTION_PROMPT = (
    "You are this persona:\n{description}\n\n"
    "Write one question about {topic} that this persona would ask a senior programmer. "
    "Reply with the question only, on one line, ending with a question mark."
)


class EndpointConfig(OpenAIEndpoint):
    """The endpoint synthesis and rewrites ask (see ``OpenAIEndpoint``). ``llama_cpp`` (default)
    starts the packaged SmolLM2 on harness-managed llama.cpp servers; keys come only from the
    environment variable named here. Sampled answers: warmer, longer and slower than a judge's."""

    concurrency: Concurrency = 2
    timeout_s: Seconds = 120.0
    temperature: Temperature = 0.7
    max_tokens: MaxTokens = 384

    @model_validator(mode="after")
    def _url_for_base_url(self) -> EndpointConfig:
        if self.kind == "base_url" and not self.base_url:
            raise ValueError("kind base_url needs base_url")
        return self

    def identity(self) -> dict[str, object]:
        """What decides the text an endpoint writes (part of item ids and cache keys); never a key."""
        return {
            "kind": self.kind,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }


class Persona(Frozen):
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    topics: tuple[str, ...] = Field(min_length=1)


class Example(Frozen):
    """A question and its answer in the house style, shown to the model before each question."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class FilterConfig(Frozen):
    """What a generated answer must pass; each rejection is counted under its filter's name."""

    # Case-insensitive regular expressions: a match anywhere rejects the answer as chatter.
    reject_patterns: tuple[str, ...] = DEFAULT_REJECT_PATTERNS
    # An answer whose last prose line asks the user something is a question back, not an answer.
    reject_question_back: bool = True
    # Layout (harness.evaluation.layout): bold or plain labels that must appear (e.g. Example, Tip),
    # a fenced code block, an opening paragraph before anything else.
    required_labels: tuple[str, ...] = ()
    require_code_block: bool = False
    require_opening: bool = False
    min_words: int = Field(default=10, ge=0)
    max_words: int = Field(default=600, ge=1)
    # Cosine (all-MiniLM-L6-v2) between two questions at or above which the later one is a
    # near-duplicate; None turns the filter off.
    near_duplicate_threshold: float | None = Field(default=0.92, gt=0.0, le=1.0)

    @field_validator("reject_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _bounds(self) -> FilterConfig:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        return self


class TrackingConfig(Frozen):
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    experiment: str = Field(default="synthesis", min_length=1)


class SynthSpec(Frozen):
    """Personas -> questions -> answers in the house style, filtered; see ``harness data synth``."""

    name: str = Field(min_length=1)
    # The system message of every written example (what the study trains with).
    system_prompt: str = Field(min_length=1)
    personas: tuple[Persona, ...] = Field(min_length=1)
    questions_per_topic: int = Field(default=1, ge=1)
    # Placeholders: {name}, {description}, {topic}.
    question_prompt: str = DEFAULT_QUESTION_PROMPT
    # House style and layout, added to the system prompt while answering only: the written
    # examples carry the plain system prompt, so a fine-tune learns the style from the answers.
    answer_instructions: str = ""
    # Few-shot turns before each question: small models copy a layout they see far better than one
    # they are told about. Never written to the output.
    answer_examples: tuple[Example, ...] = ()
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    seed: int = 0
    filters: FilterConfig = Field(default_factory=FilterConfig)
    mlflow: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("question_prompt")
    @classmethod
    def _placeholders(cls, template: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if unknown := fields - {"name", "description", "topic"}:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {{name}}, {{description}}, {{topic}}")
        return template

    @field_validator("personas")
    @classmethod
    def _unique_names(cls, personas: tuple[Persona, ...]) -> tuple[Persona, ...]:
        names = [p.name for p in personas]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"persona names must be unique; repeated: {', '.join(dupes)}")
        return personas


class AugmentConfig(Frozen):
    """How training sets are augmented: ``harness data augment`` options and a study's ``data.augment``."""

    factor: int = Field(default=1, ge=1)  # augmented copies per original example
    seed: int = 0
    # EDA (Wei & Zou 2019): words changed per operation = max(1, alpha x editable words).
    eda_alpha: float = Field(default=0.1, gt=0.0, le=0.5)
    pivot_language: str = Field(default="French", min_length=1)  # backtranslate: there and back
    endpoint: EndpointConfig = Field(default_factory=lambda: EndpointConfig(temperature=0.7))
