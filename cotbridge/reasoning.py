"""Thinking formats per model family: where a model's chain of thought lives, how to read it out of a
completion, and how to put a given CoT into the model's own reasoning channel, closed, ready for the answer.

Pure functions and data; no I/O. Delimiters (PAPER.md, "Injection"): Qwen / QwQ / DAPO / DeepSeek-R1 distills /
Nemotron use `<think>`...`</think>` (some chat templates already open `<think>` in the generation prompt, and
then it must not be opened twice); OpenThinker uses `<|begin_of_thought|>` ... `<|end_of_thought|>` followed by
`<|begin_of_solution|>`; gpt-oss uses the harmony format, where the CoT belongs in the `analysis` channel.
Hosted APIs return reasoning in a separate field and cannot take a foreign CoT as their own thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cotbridge.datasets.base import Score
from cotbridge.errors import ConfigError
from cotbridge.sentences import split_sentences
from cotbridge.types import Usage

__all__ = [
    "FORMATS",
    "Answer",
    "Explanation",
    "RemovalReport",
    "InjectionMode",
    "ThinkingFormat",
    "context_message",
    "detect_format",
    "split_sentences",
]

InjectionMode = Literal["prefill", "context"]


@dataclass(frozen=True, slots=True)
class ThinkingFormat:
    """One family's reasoning channel.

    open / close: the text that opens and closes the channel; `close` includes whatever must follow before
    the answer (OpenThinker's `<|begin_of_solution|>`, harmony's switch to the `final` channel).
    can_prefill: whether a foreign CoT can be placed in the channel as the model's own thinking.
    """

    name: str
    open: str
    close: str
    can_prefill: bool = True
    final_end: str = ""  # what ends the answer, stripped from the final text

    def opening(self, generation_prompt: str) -> str:
        """What to append to a rendered generation prompt to open the channel: nothing when the chat template
        already opened it (never open it twice)."""
        if self.open and generation_prompt.rstrip().endswith(self.open.strip()):
            return ""
        return self.open

    def injected(self, generation_prompt: str, cot: str) -> str:
        """The assistant-side text that puts `cot` in the channel and closes it; `cot=""` is the empty
        condition (channel opened and immediately closed)."""
        if not self.can_prefill:
            raise ConfigError(f"thinking format {self.name!r} cannot take a foreign CoT; use injection mode 'context'")
        body = cot.strip("\n")
        return f"{self.opening(generation_prompt)}{body}{self.close}"

    def extract(self, text: str, reasoning_field: str | None = None) -> tuple[str | None, str]:
        """(CoT, final text) from generated text that started inside the open channel, or from a completion
        whose server returned the reasoning separately. A channel never closed (cut off) is all CoT."""
        if reasoning_field is not None:
            return reasoning_field.strip(), text.strip()
        if not self.open:
            return None, text.strip()
        start = text.find(self.open)
        if start != -1:
            text = text[start + len(self.open) :]
        marker = self._close_marker()
        end = text.find(marker)
        if end == -1:
            return text.strip(), ""
        final = text[end + len(marker) :]
        tail = self.close[self.close.find(marker) + len(marker) :].strip()
        if tail and final.lstrip().startswith(tail):
            final = final.lstrip()[len(tail) :]
        if self.final_end and self.final_end in final:
            final = final[: final.find(self.final_end)]
        return text[:end].strip(), final.strip()

    def _close_marker(self) -> str:
        """The first token of `close`: what a generating model writes to end its thinking."""
        stripped = self.close.strip()
        if stripped.startswith("<|"):
            return stripped[: stripped.find("|>") + 2]
        return stripped.split()[0] if stripped else stripped

    @property
    def stop(self) -> str:
        """Stop string for generating a CoT alone."""
        return self._close_marker()


FORMATS: dict[str, ThinkingFormat] = {
    f.name: f
    for f in [
        ThinkingFormat("think-tags", open="<think>\n", close="\n</think>\n\n"),
        ThinkingFormat(
            "openthinker",
            open="<|begin_of_thought|>\n\n",
            close="\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n",
            final_end="<|end_of_solution|>",
        ),
        ThinkingFormat(
            "harmony",
            open="<|channel|>analysis<|message|>",
            close="<|end|><|start|>assistant<|channel|>final<|message|>",
            final_end="<|return|>",
        ),
        ThinkingFormat("reasoning-field", open="", close="", can_prefill=False),
        ThinkingFormat("none", open="", close="", can_prefill=False),
    ]
}

# Lower-case substrings of model ids, checked in order.
_FAMILIES: list[tuple[str, str]] = [
    ("gpt-oss", "harmony"),
    ("openthinker", "openthinker"),
    ("qwq", "think-tags"),
    ("dapo", "think-tags"),
    ("deepseek-r1", "think-tags"),
    ("r1-distill", "think-tags"),
    ("nemotron", "think-tags"),
    ("qwen3", "think-tags"),
    ("deepseek-reasoner", "reasoning-field"),
]
_HOSTED = ("openai", "anthropic", "gemini", "deepseek", "openrouter")


def detect_format(model: str, override: str | None = None) -> ThinkingFormat:
    """The thinking format of a `provider/model-id` string: the explicit override, else from the family name."""
    if override is not None:
        if override not in FORMATS:
            raise ConfigError(f"unknown thinking format {override!r} for {model}; use one of {sorted(FORMATS)}")
        return FORMATS[override]
    provider, _, model_id = model.partition("/")
    lowered = model_id.lower()
    for needle, name in _FAMILIES:
        if needle in lowered:
            return FORMATS[name]
    if provider in _HOSTED:
        return FORMATS["reasoning-field"]
    return FORMATS["none"]


CONTEXT_TEMPLATE = (
    "{question}\n\nHere is a reasoning written for this problem. Use it to answer.\n<reasoning>\n{cot}\n</reasoning>"
)


def context_message(question: str, cot: str) -> str:
    """The user message of `context` injection: the CoT given as material, not as the model's own thinking."""
    return CONTEXT_TEMPLATE.format(question=question, cot=cot.strip())


@dataclass(slots=True)
class Explanation:
    """A chain of thought written by `source_model` for one problem, with the answer the source gave.

    `without_answer` holds the answer-removed version (itself an Explanation, `removal` says how it was made);
    `prompt_text` is the exact prompt the CoT was generated from, when cotbridge rendered it.
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
    without_answer: Explanation | None = None
    usage: Usage = Usage()  # tokens of every generation that made it (the CoT and the answer after it)

    @property
    def sentences(self) -> list[str]:
        return split_sentences(self.cot)


@dataclass(slots=True, frozen=True)
class RemovalReport:
    """How an answer-removed CoT was made from its source, and what checking it found.

    dropped: indices of the source's sentences that were removed; verbatim: every kept sentence is a sentence of
    the source, in order; leaks: places where the final answer's value still appears in the filtered text.
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
    "own" (the model reasoned itself). `prompt_text`: the exact prompt sent in prefill mode.
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

    @property
    def parsed(self) -> str | None:
        return self.score.parsed

    @property
    def correct(self) -> bool | None:
        return self.score.correct
