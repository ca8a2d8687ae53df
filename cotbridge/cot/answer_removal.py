"""Answer removal: drop the sentences of a CoT that state the final answer, keep the hints, and check the result.

The paper's filter (an LLM asked to rewrite the CoT) left the final answer in about 40% of filtered QwQ and
Nemotron CoTs (measured on its released outputs) and never checked that what it kept was verbatim. Here the filter
model only chooses which numbered sentences to drop, so every kept sentence is a sentence of the source by
construction; that is still verified, and a leak check reports where the answer's value survives in the filtered text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace

from cotbridge.client import Model
from cotbridge.cot.sentences import split_sentences
from cotbridge.records import Explanation, RemovalReport

FILTER_INSTRUCTIONS = (
    "Below is a reasoning, split into numbered sentences, written to solve a problem whose final answer is "
    "{answer}. List the numbers of the sentences that state or restate the final answer (its value or a "
    "conclusion such as 'so the score is ...'). Do not list sentences that only give hints, facts, formulas or "
    'intermediate steps. Reply with JSON only: {{"drop": [numbers]}}.\n\n{numbered}'
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\.\d+)?(?![\w])")
_SPACE = re.compile(r"\s+")
_PIECE_END = re.compile(r"(?<=[.!?:;])\s")
_ANSWER_PHRASES = re.compile(
    r"\b(final answer|the answer is|answer:|therefore,? the|so the (?:total|score|answer))", re.I
)


def _numbers(text: str) -> list[tuple[str, float]]:
    found = []
    for match in _NUMBER.finditer(text):
        raw = match.group().replace(",", "")
        try:
            found.append((match.group(), float(raw)))
        except ValueError:
            continue
    return found


def _matches_value(candidate: float, value: float) -> bool:
    return abs(candidate - value) <= 1e-9 + 1e-6 * abs(value)


def answer_value(text: str | None) -> float | str | None:
    """The value a leak check looks for: a number when the answer is numeric, else the trimmed text."""
    if text is None or not text.strip():
        return None
    numbers = _numbers(text)
    if len(numbers) == 1:
        return numbers[0][1]
    return text.strip()


def find_leaks(text: str, value: float | str | None) -> tuple[str, ...]:
    """Sentences of `text` in which the final answer's value still appears (numbers compared as numbers)."""
    if value is None:
        return ()
    leaks = []
    for sentence in split_sentences(text):
        if isinstance(value, float):
            if any(_matches_value(number, value) for _, number in _numbers(sentence)):
                leaks.append(sentence.strip())
        elif value.lower() in sentence.lower():
            leaks.append(sentence.strip())
    return tuple(leaks)


def _squeezed(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def kept_verbatim(source: str, filtered: str | Sequence[str]) -> bool:
    """Whether the kept text is the source's own text in the source's order: each kept sentence (the given ones, or
    the sentences of `filtered`) occurs in the source after the previous one, every whitespace run read as one space.

    Kept sentences are looked for as text, not matched against the source's sentences: dropping a sentence or
    re-joining sentences with other separators moves sentence boundaries without changing a word. A sentence of
    `filtered` not found whole is looked for piece by piece, cut after sentence punctuation, since two sentences
    the splitter joined may have had a dropped one between them.
    """
    text = _squeezed(source)
    position = 0
    for sentence in split_sentences(filtered) if isinstance(filtered, str) else filtered:
        squeezed = _squeezed(sentence)
        found = text.find(squeezed, position) if squeezed else position
        pieces = [squeezed] if found >= 0 else _PIECE_END.split(squeezed)
        for piece in pieces:
            found = text.find(piece, position)
            if found < 0:
                return False
            position = found + len(piece)
    return True


def rule_drops(sentences: list[str], value: float | str | None) -> list[int]:
    """A model-free filter: drop sentences that contain the answer's value or announce an answer."""
    return [
        i for i, sentence in enumerate(sentences) if find_leaks(sentence, value) or _ANSWER_PHRASES.search(sentence)
    ]


def _parse_drop_list(text: str, count: int) -> list[int] | None:
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text))):
        try:
            data = json.loads(match.group())
        except ValueError:
            continue
        drop = data.get("drop") if isinstance(data, dict) else None
        if isinstance(drop, list) and all(isinstance(i, int) for i in drop):
            return sorted({i for i in drop if 0 <= i < count})
    return None


def _filtered(explanation: Explanation, sentences: list[str], drops: list[int], method: str) -> Explanation:
    dropped = set(drops)
    pieces = [s for i, s in enumerate(sentences) if i not in dropped]
    kept = "".join(pieces)
    value = answer_value(explanation.answer.parsed if explanation.answer else None)
    report = RemovalReport(
        method=method,
        dropped=tuple(sorted(dropped)),
        verbatim=kept_verbatim(explanation.cot, pieces),
        leaks=find_leaks(kept, value),
    )
    return replace(explanation, cot=kept.strip(), removal=report)


def remove_answer_by_rule(explanation: Explanation) -> Explanation:
    """The answer-removed version of an explanation by `rule_drops`; the source is left as it is."""
    sentences = split_sentences(explanation.cot)
    value = answer_value(explanation.answer.parsed if explanation.answer else None)
    return _filtered(explanation, sentences, rule_drops(sentences, value), "rule")


async def remove_answer(explanation: Explanation, filter_model: Model, *, max_tokens: int = 256) -> Explanation:
    """The answer-removed version of an explanation, chosen by `filter_model` (any model of the bridge).

    When the filter's reply has no usable list, the rule filter decides and the report says so.
    """
    sentences = split_sentences(explanation.cot)
    if not sentences:
        return _filtered(explanation, sentences, [], "empty")
    answer = explanation.answer.parsed if explanation.answer and explanation.answer.parsed else "unknown"
    numbered = "\n".join(f"[{i}] {s.strip()}" for i, s in enumerate(sentences))
    prompt = [{"role": "user", "content": FILTER_INSTRUCTIONS.format(answer=answer, numbered=numbered)}]
    reply = await filter_model.chat(prompt, temperature=0.0, max_tokens=max_tokens)
    drops = _parse_drop_list(reply.text, len(sentences))
    if drops is None:
        value = answer_value(explanation.answer.parsed if explanation.answer else None)
        return _filtered(
            explanation, sentences, rule_drops(sentences, value), f"rule (filter {filter_model.name} gave no list)"
        )
    return _filtered(explanation, sentences, drops, f"llm:{filter_model.name}")
