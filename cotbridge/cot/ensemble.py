"""Sentence-level ensemble CoT (condition D), done as the paper describes and without the reference's flaws.

Each step every generator continues the shared CoT in its own thinking format and proposes k whole sentences
(sampled, one request per generator with `n`); duplicates are merged with their proposers recorded; every
evaluator scores every distinct candidate as a continuation of its own rendering of the shared CoT, by the
candidate's own mean token log-prob (never the prefix's); evaluators combine by mean; the best candidate that
passes the repetition guard is appended exactly as generated (its own leading whitespace, no word split). As in
the paper, the loop ends when the chosen candidate closes the reasoning (a generator that closes is only a
candidate; `stop_on_any_close` ends at the first one instead); a cap (max steps, max CoT tokens) or a step with
nothing usable cuts it off, and the CoT is then marked truncated; the trace says which. All candidates of a step
are generated and scored concurrently, and every request goes through the cache, so a rerun replays finished steps
offline.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from cotbridge.client import Model
from cotbridge.cot.sentences import last_complete_sentence_end, split_sentences
from cotbridge.errors import ConfigError, UnsupportedOperation
from cotbridge.options import EnsembleOptions
from cotbridge.records import Explanation, Problem, Usage

Member = tuple[str, Model]  # an ensemble member: its name in scores and traces, and the model

_WORD = re.compile(r"\w")
RECENT_SENTENCES = 8


class EnsembleEnd(StrEnum):
    """Why an ensemble CoT ended."""

    CHOSEN_CLOSED = "the chosen sentence closed the reasoning"
    GENERATOR_CLOSED = "a generator closed the reasoning"
    NO_USABLE_CANDIDATE = "no usable candidate"
    MAX_COT_TOKENS = "max CoT tokens"
    MAX_STEPS = "max steps"

    @property
    def complete(self) -> bool:
        """Whether the reasoning was closed, rather than cut off by a cap or by a lack of candidates."""
        return self in (EnsembleEnd.CHOSEN_CLOSED, EnsembleEnd.GENERATOR_CLOSED)


class StepChoice(StrEnum):
    """How a step's sentence was chosen."""

    BEST = "best"
    FALLBACK = "all rejected: took the next best distinct candidate"
    CLOSING = "a generator closed the reasoning"
    NOTHING_USABLE = "nothing usable"


@dataclass(frozen=True, slots=True)
class Proposer:
    """Who proposed a candidate: a generator model and the index of its sample."""

    model: str
    sample: int


@dataclass(slots=True)
class Candidate:
    """One distinct proposed sentence with who proposed it and how each evaluator scored it."""

    text: str
    proposers: list[Proposer]
    closes: bool = False
    capped: bool = False
    tokens: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # evaluator -> mean token log-prob
    sums: dict[str, float] = field(default_factory=dict)  # evaluator -> summed log-prob
    score: float = float("-inf")
    rejected: str | None = None


@dataclass(slots=True)
class Step:
    """One step: every candidate, the chosen one, and what it cost."""

    index: int
    candidates: list[Candidate]
    chosen: int | None
    note: StepChoice
    seconds: float
    requests: int
    cache_hits: int


@dataclass(slots=True)
class EnsembleTrace:
    """The whole run: steps, why it ended (and which generators closed the reasoning), and the CoT's token count
    (by the first evaluator's tokenizer)."""

    steps: list[Step] = field(default_factory=list)
    ended: EnsembleEnd = EnsembleEnd.MAX_STEPS
    closed_by: list[str] = field(default_factory=list)
    cot_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chosen_by(self) -> dict[str, int]:
        """How many chosen sentences each generator proposed (a sentence proposed by two counts for both)."""
        return chosen_by_generator(self.as_dict())


def chosen_by_generator(trace: dict[str, Any]) -> dict[str, int]:
    """`EnsembleTrace.chosen_by` of a trace as stored (its `as_dict()` JSON)."""
    counts: dict[str, int] = {}
    for step in trace["steps"]:
        if step["chosen"] is not None:
            for proposer in step["candidates"][step["chosen"]]["proposers"]:
                counts[proposer["model"]] = counts.get(proposer["model"], 0) + 1
    return counts


def count_truncated(traces: Iterable[dict[str, Any]]) -> int:
    """How many of the stored traces (`EnsembleTrace.as_dict()` JSON) ended without closing the reasoning: cut off by
    a cap or by a step with nothing usable. An ending this version does not know (a file from another version) is
    not known to be complete, so it counts."""
    complete = {end.value for end in EnsembleEnd if end.complete}
    return sum(trace.get("ended") not in complete for trace in traces)


def _rejection(text: str, cot: str) -> str | None:
    """Why a candidate must not be appended, or None: the guard against the reference's '... ... ...' loops."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    letters = len(_WORD.findall(stripped))
    if letters < 0.4 * len(stripped.replace(" ", "")):
        return "mostly punctuation"
    recent = [s.strip() for s in split_sentences(cot)[-RECENT_SENTENCES:]]
    if stripped in recent:
        return "repeats recent text"
    if len(stripped) >= 20 and stripped in cot:
        return "repeats earlier text"
    return None


def first_sentence(generated: str, *, capped: bool) -> tuple[str, bool]:
    """The first whole sentence of a continuation, exactly as generated (with its leading whitespace), and whether
    it had to be taken unfinished because the token cap cut the only sentence."""
    sentences = split_sentences(generated)
    if not sentences:
        return "", False
    if len(sentences) > 1:
        return sentences[0], False
    whole = sentences[0]
    if not capped:
        return whole, False
    end = last_complete_sentence_end(whole)
    return (whole[:end], False) if end > 0 else (whole, True)


async def _propose(
    member: Member, problem: Problem, cot: str, options: EnsembleOptions, seed: int
) -> tuple[list[tuple[Proposer, str, bool, bool]], Usage]:
    """(proposer, sentence, closes, capped) for the samples of one generator continuing the shared CoT, and the
    tokens those samples took."""
    label, generator = member
    fmt = generator.thinking_format
    rendered = await generator.render(problem.prompt)
    ids = await generator.tokenize(rendered + fmt.opening(rendered) + cot)
    result = await generator.complete(
        ids,
        n=options.candidates,
        temperature=options.temperature,
        seed=seed,
        max_tokens=options.max_sentence_tokens,
    )
    completions = result if isinstance(result, list) else [result]  # n=1 gives one Completion
    proposals = []
    for completion in completions:
        text = completion.text
        marker = text.find(fmt.stop)
        closes = marker != -1
        if closes:
            text = text[:marker]
        sentence, capped = first_sentence(text, capped=completion.finish_reason == "length" and not closes)
        # A sentence that ends right where the model closed its reasoning closes it.
        closes = closes and sentence.strip() == text.strip()
        proposals.append((Proposer(label, completion.sample_index), sentence, closes, capped))
    return proposals, sum((c.usage for c in completions), Usage())


async def _score(evaluator: Model, problem: Problem, cot: str, text: str) -> tuple[float, float, int]:
    fmt = evaluator.thinking_format
    rendered = await evaluator.render(problem.prompt)
    result = await evaluator.score(rendered + fmt.opening(rendered) + cot, text)
    return result.mean_logprob, result.sum_logprob, result.n_tokens


def named_members(models: Sequence[Model] | Mapping[str, Model], role: str) -> list[Member]:
    """(name, model) pairs: a mapping's names (a study's [models] names), or the models' own names. Names key the
    scores and the trace, so two members may share a model string only under names of their own."""
    if isinstance(models, Mapping):
        return list(models.items())
    members = [(model.name, model) for model in models]
    repeated = sorted({name for name, _ in members if sum(n == name for n, _ in members) > 1})
    if repeated:
        raise ConfigError(
            f"ensemble {role} {repeated} appear more than once; pass the {role} as a mapping name -> model so each "
            "gets its own name"
        )
    return members


def _check_models(generators: list[Member], evaluators: list[Member]) -> None:
    if not generators or not evaluators:
        raise ConfigError("an ensemble needs at least one generator and one evaluator")
    for _, model in generators:
        if not model.thinking_format.can_prefill or not model.capabilities.tokenize:
            raise ConfigError(
                f"{model.name} cannot be an ensemble generator: it must continue a given CoT in its own reasoning "
                "channel (a thinking format with a channel, on a server that renders templates and takes token ids)"
            )
    for _, model in evaluators:
        if model.capabilities.prompt_scoring is None or not model.capabilities.chat_template:
            raise UnsupportedOperation(
                f"{model.name} cannot be an ensemble evaluator: its server cannot score a continuation "
                "(no prompt log-probs). Use a vLLM or llama.cpp model as evaluator."
            )


def _merge(proposed: list[tuple[list[tuple[Proposer, str, bool, bool]], Usage]]) -> tuple[list[Candidate], Usage]:
    """The distinct candidates of a step, each with all its proposers, and the tokens the proposals took."""
    merged: dict[str, Candidate] = {}
    usage = Usage()
    for proposals, used in proposed:
        usage = usage + used
        for proposer, text, closes, capped in proposals:
            candidate = merged.get(text)
            if candidate is None:
                merged[text] = Candidate(text=text, proposers=[proposer], closes=closes, capped=capped)
            else:
                candidate.proposers.append(proposer)
                candidate.closes = candidate.closes or closes
    return list(merged.values()), usage


async def _score_all(pool: list[Candidate], evaluators: list[Member], problem: Problem, cot: str) -> None:
    """Every evaluator scores every non-empty candidate, all at once; evaluators combine by mean."""
    scorable = [c for c in pool if c.text.strip()]
    scores = await asyncio.gather(*(_score(e, problem, cot, c.text) for c in scorable for _, e in evaluators))
    for i, candidate in enumerate(scorable):
        for j, (label, _) in enumerate(evaluators):
            mean, total, n_tokens = scores[i * len(evaluators) + j]
            candidate.scores[label] = mean
            candidate.sums[label] = total
            if j == 0:
                candidate.tokens = n_tokens
        candidate.score = sum(candidate.scores.values()) / len(evaluators)


def _choose(pool: list[Candidate], cot: str) -> tuple[int | None, StepChoice]:
    """The best candidate that passes the guard; else the next best distinct one (a whole sentence before one cut at
    the token cap); else a bare closing."""
    for candidate in pool:
        candidate.rejected = _rejection(candidate.text, cot) or (
            "unfinished at the token cap" if candidate.capped else None
        )
    ranked = sorted(range(len(pool)), key=lambda i: pool[i].score, reverse=True)
    usable = [i for i in ranked if pool[i].rejected is None]
    if usable:
        return usable[0], StepChoice.BEST
    last = split_sentences(cot)[-1].strip() if cot else ""
    fallback = [i for i in ranked if pool[i].text.strip() and pool[i].text.strip() != last]
    fallback.sort(key=lambda i: pool[i].capped)  # stable: by score within whole and within cut sentences
    if fallback:
        return fallback[0], StepChoice.FALLBACK
    closing_only = [i for i in ranked if pool[i].closes and not pool[i].text.strip()]
    if closing_only:
        return closing_only[0], StepChoice.CLOSING
    return None, StepChoice.NOTHING_USABLE


async def _step(
    index: int, problem: Problem, cot: str, generators: list[Member], evaluators: list[Member], options: EnsembleOptions
) -> tuple[Step, Usage]:
    """One step: every generator proposes, every evaluator scores, one candidate is chosen (or none)."""
    stats = generators[0][1].stats
    started, requests, hits = time.perf_counter(), stats.requests, stats.cache_hits
    proposed = await asyncio.gather(
        *(_propose(g, problem, cot, options, options.seed + 1000 * index + i) for i, g in enumerate(generators))
    )
    pool, usage = _merge(proposed)
    await _score_all(pool, evaluators, problem, cot)
    chosen, note = _choose(pool, cot)
    seconds = time.perf_counter() - started
    return Step(index, pool, chosen, note, seconds, stats.requests - requests, stats.cache_hits - hits), usage


async def build_ensemble(
    problem: Problem,
    generators: Sequence[Model] | Mapping[str, Model],
    evaluators: Sequence[Model] | Mapping[str, Model],
    options: EnsembleOptions | None = None,
    *,
    name: str = "ensemble",
) -> tuple[Explanation, EnsembleTrace]:
    """An ensemble CoT for one problem, and its trace. Names in the trace are the mappings' names (a study's
    [models] names), or the models' own names when lists are given."""
    options = options or EnsembleOptions()
    proposing, scoring = named_members(generators, "generators"), named_members(evaluators, "evaluators")
    _check_models(proposing, scoring)
    trace = EnsembleTrace()
    cot = ""
    usage = Usage()  # the candidates' generation (scoring requests report no usage)
    for index in range(options.max_steps):
        step, used = await _step(index, problem, cot, proposing, scoring, options)
        trace.steps.append(step)
        usage = usage + used
        if step.chosen is None:
            trace.ended = EnsembleEnd.NO_USABLE_CANDIDATE
            break
        picked = step.candidates[step.chosen]
        cot += picked.text
        trace.cot_tokens += picked.tokens
        closers = sorted({p.model for c in step.candidates if c.closes for p in c.proposers})
        if picked.closes:
            trace.ended = EnsembleEnd.CHOSEN_CLOSED
            break
        if options.stop_on_any_close and closers:
            trace.ended, trace.closed_by = EnsembleEnd.GENERATOR_CLOSED, closers
            break
        if trace.cot_tokens >= options.max_cot_tokens:
            trace.ended = EnsembleEnd.MAX_COT_TOKENS
            break
    explanation = Explanation(
        problem_id=problem.id,
        source_model=name,
        format="ensemble",
        cot=cot.strip(),
        final_text="",
        answer=None,
        temperature=options.temperature,
        seed=options.seed,
        truncated=not trace.ended.complete,
        usage=usage,
    )
    return explanation, trace
