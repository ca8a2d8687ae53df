"""Thinking formats per model family: where a model's chain of thought lives, how to read it out of a
completion, and how to put a given CoT into the model's own reasoning channel, closed, ready for the answer.

Pure functions and data, no I/O; the only place the channel delimiters are written. Both the client (reading
reasoning that a server left inline) and the CoT layer (placing a foreign CoT) use them. Delimiters, from the
models' chat templates: Qwen / QwQ / DAPO / DeepSeek-R1 distills / Nemotron use `<think>`...`</think>` (some chat
templates already open `<think>` in the generation prompt, and then it must not be opened twice); OpenThinker uses
`<|begin_of_thought|>` ... `<|end_of_thought|>` followed by `<|begin_of_solution|>`; gpt-oss uses the harmony
format, where the CoT belongs in the `analysis` channel. Hosted APIs return reasoning in a separate field and
cannot take a foreign CoT as their own thinking.
"""

from __future__ import annotations

from dataclasses import dataclass

from cotbridge.errors import ConfigError


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

# Family hints: lower-case substrings of model ids, checked in order.
FAMILY_FORMATS: tuple[tuple[str, str], ...] = (
    ("gpt-oss", "harmony"),
    ("openthinker", "openthinker"),
    ("qwq", "think-tags"),
    ("dapo", "think-tags"),
    ("deepseek-r1", "think-tags"),
    ("r1-distill", "think-tags"),
    ("nemotron", "think-tags"),
    ("qwen3", "think-tags"),
    ("deepseek-reasoner", "reasoning-field"),
)


def format_named(name: str, *, model: str = "") -> ThinkingFormat:
    """The thinking format called `name`, or a ConfigError listing the known ones."""
    found = FORMATS.get(name)
    if found is None:
        where = f" for {model}" if model else ""
        raise ConfigError(f"unknown thinking format {name!r}{where}; use one of {sorted(FORMATS)}")
    return found


def detect_format(model_id: str, override: str | None = None, fallback: str = "none") -> ThinkingFormat:
    """The thinking format of a model: the explicit override, else from the family name in its id, else
    `fallback` (the provider's default: hosted APIs return reasoning in a field)."""
    if override is not None:
        return format_named(override, model=model_id)
    lowered = model_id.lower()
    for needle, name in FAMILY_FORMATS:
        if needle in lowered:
            return FORMATS[name]
    return FORMATS[fallback]


# Servers that leave reasoning inline (a vLLM without a reasoning parser, llama.cpp, open-model hosts) use the
# think-tags convention in chat content, whatever the family's own delimiters.
THINK_OPEN = FORMATS["think-tags"].open.strip()
THINK_CLOSE = FORMATS["think-tags"].close.strip()


def split_inline_thinking(text: str) -> tuple[str | None, str]:
    """Splits `<think>...</think>` out of text: (reasoning, final text).

    Handles a reasoning channel opened by the prompt (only the closing tag in the text) and one never closed
    (generation cut off: everything after the opening tag is reasoning, the final text is empty).
    """
    close = text.find(THINK_CLOSE)
    open_ = text.find(THINK_OPEN)
    if close == -1 and open_ == -1:
        return None, text
    if close == -1:
        return text[open_ + len(THINK_OPEN) :].strip(), ""
    start = open_ + len(THINK_OPEN) if -1 < open_ < close else 0
    return text[start:close].strip(), text[close + len(THINK_CLOSE) :].strip()


def split_reasoning(content: str | None, reasoning: str | None, prefill: str | None) -> tuple[str, str | None]:
    """(final text, reasoning) of a chat message from its content and its separate reasoning field, if any.

    With an assistant prefill, servers differ: vLLM returns only the continuation, llama.cpp returns prefill +
    continuation; both give the same result here. A prefill that opened the channel makes the content's start
    reasoning until the channel closes.
    """
    content = content or ""
    if prefill and content.startswith(prefill):
        content = content[len(prefill) :]
    # A prefill that opened the channel and left it open holds the start of the reasoning.
    opened = prefill is not None and THINK_OPEN in prefill and THINK_CLOSE not in prefill[prefill.rfind(THINK_OPEN) :]
    if reasoning is not None:
        if opened:
            assert prefill is not None
            reasoning = prefill[prefill.rfind(THINK_OPEN) + len(THINK_OPEN) :] + reasoning
        return content.strip(), reasoning.strip()
    if prefill is not None and THINK_OPEN in prefill:
        inline, final = split_inline_thinking(prefill + content)
        return final, inline
    if THINK_OPEN in content or THINK_CLOSE in content:
        inline, final = split_inline_thinking(content)
        return final, inline
    return content, None
