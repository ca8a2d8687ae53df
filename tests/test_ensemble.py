"""Sentence-level ensemble CoTs on a real llama.cpp server: whole sentences, traceable, always ending, replayable."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, EnsembleOptions, UnsupportedOperation, build_ensemble, load_dataset
from cotbridge.cot.ensemble import _rejection, first_sentence
from tests.fault_server import FaultServer

PROBLEM = load_dataset("builtin:arithmetic")[2]


def test_first_sentence_keeps_its_own_whitespace_and_whole_words() -> None:
    assert first_sentence(" Add 3.5 and 2. Then halve.", capped=False) == (" Add 3.5 and 2.", False)
    assert first_sentence("\nStep 1: add. More", capped=True) == ("\nStep 1: add.", False)
    assert first_sentence(" Add the num", capped=True) == (" Add the num", True)  # rejected later as unfinished


def test_repetition_guard() -> None:
    cot = "First, add the two numbers. Then check."
    assert _rejection(" First, add the two numbers.", cot) == "repeats recent text"
    assert _rejection(" ... ... ...", cot) == "mostly punctuation"
    assert _rejection("  ", cot) == "empty"
    assert _rejection(" Now multiply by four.", cot) is None


async def test_ensemble_of_two_generators(llama_server: str, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    options = EnsembleOptions(candidates=3, max_steps=5, max_sentence_tokens=40, seed=7)
    async with Bridge(cache=db) as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        b = bridge.model("llamacpp/smollm2-twin", base_url=llama_server, thinking_format="think-tags")
        explanation, trace = await build_ensemble(PROBLEM, [a, b], [a, b], options)
    assert trace.ended and trace.steps
    chosen = [step.candidates[step.chosen].text for step in trace.steps if step.chosen is not None]
    assert explanation.cot == "".join(chosen).strip()
    for step in trace.steps:
        texts = [c.text for c in step.candidates]
        assert len(texts) == len(set(texts)), "duplicates must be merged"
        assert sum(len(c.proposers) for c in step.candidates) == 6  # 2 generators x 3 samples
        for c in step.candidates:
            if c.text.strip():
                assert set(c.scores) == {a.name, b.name}
                assert c.score == pytest.approx(sum(c.scores.values()) / 2)
    for before, after in zip(chosen, chosen[1:], strict=False):
        assert not (before[-1:].isalnum() and after[:1].isalnum()), "a word was split between sentences"
    assert sum(trace.chosen_by().values()) >= len(chosen)

    async with Bridge(cache=db) as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        b = bridge.model("llamacpp/smollm2-twin", base_url=llama_server, thinking_format="think-tags")
        again, trace_again = await build_ensemble(PROBLEM, [a, b], [a, b], options)
        assert bridge.stats.requests == 0, "a finished ensemble replays from the cache"
    assert again.cot == explanation.cot and trace_again.ended == trace.ended
    # every candidate's tokens are counted (6 per step), from the server or the cache alike
    assert explanation.usage.completion_tokens >= 6 * len(trace.steps) and again.usage == explanation.usage


async def test_an_ensemble_always_ends(llama_server: str) -> None:
    async with Bridge() as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        options = EnsembleOptions(candidates=2, max_steps=2, max_sentence_tokens=24)
        _, trace = await build_ensemble(PROBLEM, [a], [a], options)
    assert len(trace.steps) <= 2 and trace.ended


async def test_who_cannot_take_part_is_told_up_front(llama_server: str, faults: FaultServer) -> None:
    async with Bridge() as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        generic = bridge.model("openai-compatible/ok", base_url=faults.base_url, thinking_format="think-tags")
        plain = bridge.model("llamacpp/plain", base_url=llama_server)
        with pytest.raises(UnsupportedOperation, match="cannot be an ensemble evaluator"):
            await build_ensemble(PROBLEM, [a], [generic])
        with pytest.raises(ConfigError, match="cannot be an ensemble generator"):
            await build_ensemble(PROBLEM, [plain], [a])
    assert faults.total == 0
