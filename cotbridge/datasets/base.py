"""Problems and scores: what every dataset loader returns and what every answer rule gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotbridge.types import Message


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
