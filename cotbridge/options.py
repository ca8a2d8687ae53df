"""Options: one pydantic model per concept, shared by the Python API and the study file, with every default
written once here.

`ModelOptions` is what `Bridge.model(...)` takes and what a study's `[models.NAME]` holds; `RetryPolicy` and
`Price` are values the client uses as they are; `Decoding` and `EnsembleOptions` are the CoT layer's knobs. A
mistake is a pydantic error naming the field, which the callers turn into a `ConfigError`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from cotbridge.formats import format_named
from cotbridge.records import Usage

InjectionMode = Literal["prefill", "context"]

DEFAULT_CONCURRENCY = 16  # in-flight requests per endpoint (also its connection limit)
DEFAULT_TIMEOUT_S = 600.0  # one request, reasoning models included
DEFAULT_COT_TOKENS = 1024  # a generated chain of thought
DEFAULT_ANSWER_TOKENS = 256  # an answer after a chain of thought


class Strict(BaseModel):
    """Unknown fields are mistakes (a misspelt option must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


class RetryPolicy(Strict):
    """How often and how patiently transient failures are retried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=6, ge=1)
    initial_wait_s: float = Field(default=0.5, gt=0)
    max_wait_s: float = Field(default=30.0, gt=0)
    jitter_s: float = Field(default=0.5, ge=0)
    max_retry_after_s: float = Field(default=300.0, gt=0, description="the longest wait a server may ask for")


class Price(Strict):
    """USD per million input (prompt) and output (completion, reasoning included) tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)

    def cost(self, usage: Usage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


class ModelOptions(Strict):
    """How to reach one model and how to treat it. Keys are never options: they come from the environment."""

    base_url: str | list[str] | None = Field(
        default=None,
        description="the server's /v1 URL (default: the provider's), or a list of replicas serving the same weights",
    )
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    thinking_format: str | None = Field(
        default=None, description="think-tags, openthinker, harmony, reasoning-field or none (default: from the id)"
    )
    injection: InjectionMode | None = Field(default=None, description="how a foreign CoT reaches the model")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("max_concurrency", "concurrency"),
        description="in-flight requests on this model's endpoint",
    )
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="one request's timeout")
    rpm: int | None = Field(default=None, ge=1, description="requests per minute allowed (hosted APIs)")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute allowed (hosted APIs)")
    price: Price | None = Field(default=None, description="USD per million input and output tokens")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="fields added to every request body of this model (part of the cache key)"
    )
    capabilities: dict[str, Any] = Field(
        default_factory=dict,
        description="capability fields that override the bundled data, e.g. {'visibility': 'raw'} "
        "(checked against cotbridge.providers.capabilities.Capabilities when the model is opened)",
    )

    # Left out of dumps while unset, so that the dumps (and the fingerprints of study trials) of models written
    # before these fields stay as they were.
    batch: bool = Field(
        default=False,
        exclude_if=lambda value: not value,
        description="send this model's requests through its vendor's batch API (openai/, anthropic/) at the batch "
        "price; results reach the same cache rows as live answers",
    )
    batch_poll_s: float | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        gt=0,
        allow_inf_nan=False,
        description="the first wait between polls of a batch job (default 10 s; it doubles up to 5 min)",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("base_url is an empty list; give at least one replica's URL")
        if isinstance(value, list) and len(set(value)) < len(value):
            raise ValueError(f"base_url lists a replica twice: {value!r}")
        for url in [value] if isinstance(value, str) else value or []:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"base_url {url!r} must start with http:// or https://")
        return value

    @field_validator("thinking_format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None:
            format_named(value)
        return value


class Decoding(Strict):
    """Decoding settings of explanations and answers."""

    cot_max_tokens: int = Field(default=DEFAULT_COT_TOKENS, ge=1, description="token budget of a generated CoT")
    answer_max_tokens: int = Field(default=DEFAULT_ANSWER_TOKENS, ge=1, description="token budget of an answer")
    sampled_temperature: float = Field(default=1.0, ge=0.0, description="temperature of the 'sampled' condition")
    seed: int = Field(default=0, description="seed of sampled generations")
    answer_prefix: str = Field(
        default="", description="text that starts every answer, e.g. 'Answer:' (a format cue, parsed with the answer)"
    )


class EnsembleOptions(Strict):
    """A sentence-level ensemble CoT: how many candidates, when to stop, how to sample.

    The defaults follow the paper (Pal et al., arXiv 2601.11517): the CoT ends when the chosen sentence closes the
    reasoning, and the caps only stop runaway runs. Its released ensemble CoTs that closed reach 468 sentences and
    about 9,000 tokens, so the caps sit about twice above that. Lower them, or set `stop_on_any_close`, for cheaper
    runs; a CoT a cap cut off is marked truncated.
    """

    candidates: int = Field(default=3, ge=1, description="sentences each generator proposes per step")
    max_steps: int = Field(default=1024, ge=1, description="cap on the sentences of the CoT (one per step)")
    max_cot_tokens: int = Field(default=16384, ge=1, description="cap on the CoT's tokens (first evaluator's count)")
    max_sentence_tokens: int = Field(default=64, ge=1, description="token cap of one proposed sentence")
    temperature: float = Field(default=1.0, ge=0.0, description="sampling temperature of the proposals")
    seed: int = Field(default=0, description="seed of the first step's proposals")
    stop_on_any_close: bool = Field(
        default=False, description="end as soon as any generator closes the reasoning (cheaper; not the paper's rule)"
    )


def validation_message(error: ValidationError, where: str) -> str:
    """A pydantic error as lines a person can act on: `where`, then each field and what is wrong with it."""
    lines = [f"{where}: {error.error_count()} problem(s)"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")  # a validator's own sentence says enough
        if item["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown field (check its spelling and its section)"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"  [{location}] {message}")
    return "\n".join(lines)
