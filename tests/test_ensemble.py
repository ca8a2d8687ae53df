"""Sentence-level ensemble CoTs on a real llama.cpp server: whole sentences, traceable, always ending, replayable."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest

from cotbridge import Bridge, ConfigError, EnsembleOptions, UnsupportedOperation, build_ensemble, load_dataset
from cotbridge.cot import ensemble
from cotbridge.cot.ensemble import (
    Candidate,
    EnsembleEnd,
    Proposer,
    Step,
    StepChoice,
    _choose,
    _rejection,
    count_truncated,
    first_sentence,
)
from cotbridge.cot.sentences import split_sentences
from cotbridge.records import Usage
from tests.conftest import SHARED_DATA
from tests.fault_server import FaultServer

PROBLEM = load_dataset("builtin:arithmetic")[2]
RELEASED = SHARED_DATA / "genex-medcalc" / "without_answer"


def scripted(monkeypatch: pytest.MonkeyPatch, steps: list[list[Candidate]]) -> None:
    """Replaces the models of an ensemble by scripted steps: each step's first candidate scores best."""

    async def step(index: int, *_: Any) -> tuple[Step, Usage]:
        pool = steps[min(index, len(steps) - 1)]
        for rank, candidate in enumerate(pool):
            candidate.score = -float(rank)
        chosen, note = _choose(pool, "")
        return Step(index, pool, chosen, note, 0.0, 0, 0), Usage()

    monkeypatch.setattr(ensemble, "_step", step)
    monkeypatch.setattr(ensemble, "_check_models", lambda *_: None)


def sentence(text: str, *, by: str = "a", closes: bool = False, tokens: int = 5) -> Candidate:
    return Candidate(text=text, proposers=[Proposer(by, 0)], closes=closes, tokens=tokens)


async def test_a_generator_closing_is_only_a_candidate_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(
        monkeypatch,
        [[sentence(" Add 2 and 3."), sentence(" Done.", by="b", closes=True)], [sentence(" So 5.", closes=True)]],
    )
    explanation, trace = await build_ensemble(PROBLEM, [], [])
    assert (trace.ended, len(trace.steps), explanation.truncated) == (EnsembleEnd.CHOSEN_CLOSED, 2, False)
    assert explanation.cot == "Add 2 and 3. So 5."
    _, cheaper = await build_ensemble(PROBLEM, [], [], EnsembleOptions(stop_on_any_close=True))
    assert (cheaper.ended, cheaper.closed_by, len(cheaper.steps)) == (EnsembleEnd.GENERATOR_CLOSED, ["b"], 1)


async def test_every_cap_marks_the_cot_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    endless = [[sentence(f" Step {i} adds.", tokens=10)] for i in range(50)]
    scripted(monkeypatch, endless)
    runs = [await build_ensemble(PROBLEM, [], [], EnsembleOptions(max_steps=3))]
    runs.append(await build_ensemble(PROBLEM, [], [], EnsembleOptions(max_cot_tokens=25)))
    scripted(monkeypatch, [[sentence(" Fine.")], [sentence("  ")]])
    runs.append(await build_ensemble(PROBLEM, [], []))
    ends = [(trace.ended, len(trace.steps)) for _, trace in runs]
    assert ends == [(EnsembleEnd.MAX_STEPS, 3), (EnsembleEnd.MAX_COT_TOKENS, 3), (EnsembleEnd.NO_USABLE_CANDIDATE, 2)]
    assert all(explanation.truncated and not trace.ended.complete for explanation, trace in runs)
    scripted(monkeypatch, [[sentence(" Done.", closes=True)]])
    finished = await build_ensemble(PROBLEM, [], [])
    assert count_truncated([trace.as_dict() for _, trace in [*runs, finished]]) == 3


def test_the_fallback_prefers_a_whole_sentence_to_one_cut_at_the_cap() -> None:
    cut = Candidate(" The score is the sum of", [Proposer("a", 0)], capped=True, score=-0.1)
    repeated = Candidate(" Add them.", [Proposer("b", 0)], score=-0.5)
    assert _choose([cut, repeated], "Add them. Then check.") == (1, StepChoice.FALLBACK)


def released_ensemble_sentences() -> list[int]:
    """Sentence counts of the paper's released ensemble CoTs that closed their reasoning."""
    if not RELEASED.is_dir():
        pytest.skip(f"the paper's released outputs are not at {RELEASED}")
    csv.field_size_limit(sys.maxsize)
    counts = []
    for path in sorted(RELEASED.glob("medcalc_ensemble_gen_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                text = row["Ensembled Thought"]
                start = text.rfind("<think>")
                end = text.find("</think>", start)
                if end != -1:
                    counts.append(len(split_sentences(text[start + len("<think>") : end].strip())))
    return counts


def test_the_default_caps_fit_the_papers_ensemble_cots() -> None:
    counts = released_ensemble_sentences()
    assert len(counts) == 286 and sum(c > 64 for c in counts) > 100, "the old cap of 64 steps cut most of them"
    options = EnsembleOptions()
    assert max(counts) * 2 <= options.max_steps and not options.stop_on_any_close


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


async def test_members_are_keyed_by_their_names_not_their_model_strings(llama_server: str) -> None:
    """Two study entries of one model string (say bf16 and awq weights) are two evaluators, never one."""
    async with Bridge() as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        options = EnsembleOptions(candidates=2, max_steps=1, max_sentence_tokens=16)
        with pytest.raises(ConfigError, match="more than once"):
            await build_ensemble(PROBLEM, [a], [a, a], options)
        _, trace = await build_ensemble(PROBLEM, {"bf16": a}, {"bf16": a, "awq": a}, options)
    scored = [c for step in trace.steps for c in step.candidates if c.text.strip()]
    assert scored and all(set(c.scores) == {"bf16", "awq"} for c in scored)
    assert {p.model for step in trace.steps for c in step.candidates for p in c.proposers} == {"bf16"}
