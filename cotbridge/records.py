"""Data records that cross layers: messages, completions, usage, token log-probs, scores, problems, explanations
and answers.

Records are plain slotted dataclasses: a warm cache hit builds one per call, and these cost a fraction of a
validated model. User input is validated where it enters (options in `cotbridge.options`, messages in the client).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# One chat message in the OpenAI wire shape: {"role": "system" | "user" | "assistant" | ..., "content": str}.
# A plain dict alias so that literals typed inline need no casts; the client validates it where it enters.
Message = dict[str, Any]


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts of one request as the server reported them (0 when it did not); the `live_` counts are
    those of a batch model's request its batch job could not answer, sent live at the live price."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    live_prompt_tokens: int = 0
    live_completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.live_prompt_tokens + other.live_prompt_tokens,
            self.live_completion_tokens + other.live_completion_tokens,
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

    @property
    def reasoning_redacted(self) -> bool:
        """Whether the vendor withheld part of the reasoning (Anthropic's encrypted `redacted_thinking` blocks), so
        `reasoning` has gaps. A provider marks such a message `reasoning_redacted: true`; read from `raw` only when
        asked, so the cache's hot path never parses a response for it."""
        message = ((self.raw.get("choices") or [{}])[0] or {}).get("message") or {}
        return message.get("reasoning_redacted") is True


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
    """Counters for one Bridge: what went over the network and what the cache saved; and `notes`, what a server's
    answers made cotbridge change for the rest of the run (for whoever shows the run to say, as library code never
    prints)."""

    requests: int = 0
    cache_hits: int = 0
    deduplicated: int = 0
    retries: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Records a note once, however many requests lead to it."""
        if text not in self.notes:
            self.notes.append(text)

    def as_dict(self) -> dict[str, int]:
        """The counters."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "notes"}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Score:
    """One answer checked against the gold answer.

    parsed: the answer as extracted from the model's own text (None when nothing parseable was found);
    normalized: a canonical string of the parsed value, so answers of two models compare as values
    ("5" for "5.0", "03/04/2021" for "3/4/2021"); correct: True, False, or None when unparseable;
    similarity: for free-text answers (Instruction Induction), the score of the named `metric`.
    """

    parsed: str | None
    normalized: str | None
    correct: bool | None
    similarity: float | None = None
    metric: str | None = None


AnswerChecker = Callable[[str], Score]


@dataclass(frozen=True, slots=True)
class Problem:
    """A question with a gold answer.

    `prompt` is the chat messages to send (system and user; no assistant turn); `check(text)` extracts the
    answer from a model's own generated text (never from the prompt or a transferred CoT) and scores it.
    """

    id: str
    dataset: str
    prompt: list[Message]
    gold: Any
    checker: AnswerChecker = field(repr=False, compare=False)
    meta: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def check(self, answer_text: str) -> Score:
        return self.checker(answer_text)

    @property
    def question(self) -> str:
        """The last user message: the problem as the model reads it."""
        return next(m["content"] for m in reversed(self.prompt) if m["role"] == "user")


@dataclass(slots=True)
class Explanation:
    """A chain of thought written by `source_model` for one problem, with the answer the source gave.

    `removal` says how an answer-removed CoT was made from its source; `prompt_text` is the exact prompt the CoT
    was generated from, when cotbridge rendered it. `truncated`: the CoT was cut off at its token cap (for an API
    that returns CoT and answer in one reply: cut off before any answer). `redacted`: the vendor withheld part of
    the reasoning (it came back encrypted), so the CoT has gaps; unlike a truncated CoT, a larger cap would not help.
    """

    problem_id: str
    source_model: str
    format: str
    cot: str
    final_text: str
    answer: Score | None
    temperature: float
    seed: int | None = None
    sample_index: int = 0
    truncated: bool = False
    prompt_text: str | None = None
    removal: RemovalReport | None = None
    usage: Usage = Usage()  # tokens of every generation that made it (the CoT and the answer after it)
    answer_truncated: bool = False  # the source's own answer after the CoT was cut off at its token cap
    redacted: bool = False


@dataclass(slots=True, frozen=True)
class RemovalReport:
    """How an answer-removed CoT was made from its source, and what checking it found.

    dropped: indices of the source's sentences that were removed; verbatim: the kept text is the source's own text,
    in order (whitespace aside); leaks: places where the final answer's value still appears in the filtered text.
    """

    method: str
    dropped: tuple[int, ...]
    verbatim: bool
    leaks: tuple[str, ...]


@dataclass(slots=True)
class Answer:
    """An evaluator's answer to one problem, given an explanation (or none).

    `text` is only what the evaluator generated (never the prompt or the injected CoT), and the answer is parsed
    from it alone. `mode`: "prefill" (the CoT as the model's own thinking), "context" (in the user message) or
    "own" (the model reasoned itself). `prompt_text`: the exact prompt sent in prefill mode. `truncated`: the
    answer (or, for "own", the model's reasoning before it) was cut off at its token cap.
    """

    problem_id: str
    model: str
    text: str
    score: Score
    mode: str
    source_model: str | None
    prompt_text: str | None = None
    cached: bool = False
    usage: Usage = Usage()
    truncated: bool = False

    @property
    def parsed(self) -> str | None:
        return self.score.parsed

    @property
    def correct(self) -> bool | None:
        return self.score.correct


class Condition(StrEnum):
    """The paper's conditions: no CoT, the model's own greedy CoT, its sampled CoTs, another model's CoT, and a
    sentence-level ensemble CoT."""

    EMPTY = "empty"
    DEFAULT = "default"
    SAMPLED = "sampled"
    TRANSFER = "transfer"
    ENSEMBLE = "ensemble"


class Variant(StrEnum):
    """A CoT as written, or with the sentences that state the final answer removed."""

    FULL = "full"
    WITHOUT_ANSWER = "without_answer"
