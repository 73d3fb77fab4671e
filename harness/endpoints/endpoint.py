"""One config type for a model behind the OpenAI protocol; API keys come only from the environment.

The judge (``evaluation.judge``) and the synthesis/rewrite endpoint (a synth spec's ``endpoint``,
``data.augment.endpoint``) inherit these fields, so users write the same keys in either place.
Kept light like the settings: pydantic only, no openai import.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from harness.settings.frozen import Frozen, env_var_name

# llama_cpp: harness-managed llama.cpp servers (or one at base_url); base_url: any other server.
EndpointKind = Literal["llama_cpp", "openai", "azure_openai", "base_url"]
# The key each endpoint kind reads when api_key_env is not given; a custom base_url and the local
# llama.cpp servers get none, so a provider's key never travels to a server it does not belong to.
DEFAULT_KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY", "azure_openai": "AZURE_OPENAI_API_KEY"}

# The constrained types of the fields a caller gives its own default (a redeclared field keeps
# its bounds only when they travel with the type).
Concurrency = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
MaxTokens = Annotated[int, Field(ge=16)]


class OpenAIEndpoint(Frozen):
    """An OpenAI chat-completions endpoint. The defaults suit short deterministic replies (a judge);
    a caller that wants otherwise redeclares the field with its own default."""

    # What messages call this endpoint ("the openai judge needs ...") and where its api_key_env is
    # written in a config (named in the missing-key message when known).
    role: ClassVar[str] = "endpoint"
    key_setting: ClassVar[str | None] = None

    kind: EndpointKind = "llama_cpp"
    # llama_cpp: a packaged model name ("smollm2") or a GGUF path; otherwise the model/deployment.
    model: str = "smollm2"
    base_url: str | None = None
    api_version: str | None = None  # azure_openai only (else OPENAI_API_VERSION, else a default)
    # The name (never the value) of the environment variable holding this endpoint's key. None:
    # OPENAI_API_KEY for openai, AZURE_OPENAI_API_KEY for azure_openai, no key for base_url (a
    # placeholder is sent); llama_cpp never sends one. See ``key_env``.
    api_key_env: str | None = None
    concurrency: Concurrency = 4  # requests in flight at once
    # The openai SDK's own retries (transport errors, 429, 5xx); callers may add their own.
    max_retries: int = Field(default=2, ge=0)
    timeout_s: Seconds = 60.0
    temperature: Temperature = 0.0
    max_tokens: MaxTokens = 200
    # llama_cpp only. llama-cpp-python's server decodes one request at a time, so concurrency
    # comes from several single-threaded server processes; None = min(concurrency, CPU count).
    servers: int | None = Field(default=None, ge=1)
    threads_per_server: int = Field(default=1, ge=1)
    n_ctx: int = Field(default=2048, ge=512)
    startup_timeout_s: float = Field(default=120.0, gt=0)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return env_var_name(value)

    @model_validator(mode="after")
    def _no_key_for_llama_cpp(self) -> OpenAIEndpoint:
        if self.kind == "llama_cpp" and self.api_key_env is not None:
            raise ValueError(
                f"a llama_cpp {self.role} never sends a key; use kind base_url for a server that needs one"
            )
        return self

    @property
    def key_env(self) -> str | None:
        """The environment variable whose value is sent as the key; None: send no real key."""
        if self.kind == "llama_cpp":
            return None
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.kind)

    @property
    def starts_servers(self) -> bool:
        """Whether the harness starts llama.cpp servers for it (kind llama_cpp without a base_url)."""
        return self.kind == "llama_cpp" and self.base_url is None
