"""Data records that cross module boundaries: messages, completions, usage, token log-probs, scores.

Results are plain slotted dataclasses: a warm cache hit builds one per call, and these cost a fraction of a
validated model. User input (messages, options) is validated where it enters, in `cotbridge.bridge`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# One chat message in the OpenAI wire shape: {"role": "system" | "user" | "assistant" | ..., "content": str}.
# A plain dict alias so that literals typed inline need no casts; `cotbridge.bridge` validates it where it enters.
Message = dict[str, Any]


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts of one request as the server reported them (0 when it did not)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(slots=True, frozen=True)
class TokenLogprob:
    """One token with its log-probability; `top` holds the alternatives when they were asked for."""

    token: str
    logprob: float
    token_id: int | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(slots=True)
class Completion:
    """One generated choice.

    `text` is the final answer text, `reasoning` the thinking the server returned separately (field
    `reasoning` or `reasoning_content`) or inline between `<think>` tags; `raw` is the server's JSON for this
    choice's response, exactly as stored in the cache. `latency_s` is the network call's, also on a cache hit.
    """

    text: str
    reasoning: str | None
    finish_reason: str | None
    usage: Usage
    model: str
    cached: bool
    latency_s: float
    sample_index: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None
    # The raw response, or its JSON text from the cache, parsed on first access: most callers never look.
    _raw: dict[str, Any] | str = field(default_factory=dict, repr=False)

    @property
    def raw(self) -> dict[str, Any]:
        if isinstance(self._raw, str):
            self._raw = json.loads(self._raw)
        return self._raw  # type: ignore[return-value]


@dataclass(slots=True, frozen=True)
class ContinuationScore:
    """Log-probabilities of a continuation's own tokens given a prompt (never the prompt's tokens).

    `method` says how the server was made to score: `prompt-logprobs` (vLLM echo / prompt_logprobs) or
    `forced-grammar` (llama.cpp: the continuation forced token by token, reading each token's log-prob).
    """

    tokens: tuple[TokenLogprob, ...]
    method: str
    model: str
    cached: bool = False

    @property
    def sum_logprob(self) -> float:
        return sum(t.logprob for t in self.tokens)

    @property
    def mean_logprob(self) -> float:
        return self.sum_logprob / len(self.tokens) if self.tokens else 0.0

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


@dataclass(slots=True)
class BridgeStats:
    """Counters for one Bridge: what went over the network and what the cache saved."""

    requests: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
