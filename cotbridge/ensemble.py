"""Sentence-level ensemble CoT (condition D), done as the paper describes and without the reference's flaws.

Each step every generator continues the shared CoT in its own thinking format and proposes k whole sentences
(sampled, one request per generator with `n`); duplicates are merged with their proposers recorded; every
evaluator scores every distinct candidate as a continuation of its own rendering of the shared CoT, by the
candidate's own mean token log-prob (never the prefix's); evaluators combine by mean; the best candidate that
passes the repetition guard is appended exactly as generated (its own leading whitespace, no word split). The
loop ends when the chosen candidate (or, by default, any generator) closes the reasoning, or at max steps, max CoT
tokens, or when nothing usable is proposed; the trace says which. All candidates of a step are generated and
scored concurrently, and every request goes through the cache, so a rerun replays finished steps offline.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cotbridge.datasets.base import Problem
from cotbridge.errors import ConfigError, UnsupportedOperation
from cotbridge.reasoning import Explanation
from cotbridge.sentences import last_complete_sentence_end, split_sentences
from cotbridge.types import Usage

if TYPE_CHECKING:
    from cotbridge.model import Model

_WORD = re.compile(r"\w")
RECENT_SENTENCES = 8


@dataclass(slots=True)
class Candidate:
    """One distinct proposed sentence with who proposed it and how each evaluator scored it."""

    text: str
    proposers: list[str]
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
    note: str
    seconds: float
    requests: int
    cache_hits: int


@dataclass(slots=True)
class EnsembleTrace:
    """The whole run: steps, why it ended, and the CoT's token count (by the first evaluator's tokenizer)."""

    steps: list[Step] = field(default_factory=list)
    ended: str = ""
    cot_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chosen_by(self) -> dict[str, int]:
        """How many chosen sentences each generator proposed (a sentence proposed by two counts for both)."""
        counts: dict[str, int] = {}
        for step in self.steps:
            if step.chosen is not None:
                for proposer in step.candidates[step.chosen].proposers:
                    name = proposer.split("#")[0]
                    counts[name] = counts.get(name, 0) + 1
        return counts


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
    generator: Model, name: str, problem: Problem, cot: str, k: int, max_tokens: int, temperature: float, seed: int
) -> tuple[list[tuple[str, str, bool, bool]], Usage]:
    """(proposer, sentence, closes, capped) for k samples of one generator continuing the shared CoT, and the
    tokens those samples took."""
    fmt = generator.thinking_format
    rendered = await generator.render(problem.prompt)
    prompt = rendered + fmt.opening(rendered) + cot
    ids = await generator.tokenize(prompt)
    result = await generator.complete(ids, n=k, temperature=temperature, seed=seed, max_tokens=max_tokens)
    completions = result if isinstance(result, list) else [result]
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
        proposals.append((f"{name}#{completion.sample_index}", sentence, closes, capped))
    return proposals, sum((c.usage for c in completions), Usage())


async def _score(evaluator: Model, problem: Problem, cot: str, text: str) -> tuple[float, float, int]:
    fmt = evaluator.thinking_format
    rendered = await evaluator.render(problem.prompt)
    result = await evaluator.score(rendered + fmt.opening(rendered) + cot, text)
    return result.mean_logprob, result.sum_logprob, result.n_tokens


def _check_models(generators: list[Model], evaluators: list[Model]) -> None:
    if not generators or not evaluators:
        raise ConfigError("an ensemble needs at least one generator and one evaluator")
    for model in generators:
        if not model.thinking_format.can_prefill or not model.capabilities.tokenize:
            raise ConfigError(
                f"{model.name} cannot be an ensemble generator: it must continue a given CoT in its own reasoning "
                "channel (a thinking format with a channel, on a server that renders templates and takes token ids)"
            )
    for model in evaluators:
        if model.capabilities.prompt_scoring is None or not model.capabilities.chat_template:
            raise UnsupportedOperation(
                f"{model.name} cannot be an ensemble evaluator: its server cannot score a continuation "
                "(no prompt log-probs). Use a vLLM or llama.cpp model as evaluator."
            )


async def build_ensemble(
    problem: Problem,
    generators: list[Model],
    evaluators: list[Model],
    *,
    candidates: int = 3,
    max_steps: int = 64,
    max_cot_tokens: int = 2048,
    max_sentence_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    stop_on_any_close: bool = True,
    name: str = "ensemble",
) -> tuple[Explanation, EnsembleTrace]:
    """An ensemble CoT for one problem, and its trace. Names in the trace are the models' names."""
    _check_models(generators, evaluators)
    stats = generators[0]._bridge.stats
    trace = EnsembleTrace()
    cot = ""
    usage = Usage()  # the candidates' generation (scoring requests report no usage)
    for step_index in range(max_steps):
        started = time.perf_counter()
        requests, hits = stats.requests, stats.cache_hits
        proposed = await asyncio.gather(
            *(
                _propose(
                    g, g.name, problem, cot, candidates, max_sentence_tokens, temperature, seed + 1000 * step_index + i
                )
                for i, g in enumerate(generators)
            )
        )
        merged: dict[str, Candidate] = {}
        for proposals, used in proposed:
            usage = usage + used
            for proposer, text, closes, capped in proposals:
                candidate = merged.get(text)
                if candidate is None:
                    merged[text] = Candidate(text=text, proposers=[proposer], closes=closes, capped=capped)
                else:
                    candidate.proposers.append(proposer)
                    candidate.closes = candidate.closes or closes
        pool = list(merged.values())
        scorable = [c for c in pool if c.text.strip()]
        scores = await asyncio.gather(*(_score(e, problem, cot, c.text) for c in scorable for e in evaluators))
        for i, candidate in enumerate(scorable):
            for j, evaluator in enumerate(evaluators):
                mean, total, n_tokens = scores[i * len(evaluators) + j]
                candidate.scores[evaluator.name] = mean
                candidate.sums[evaluator.name] = total
                if j == 0:
                    candidate.tokens = n_tokens
            candidate.score = sum(candidate.scores.values()) / len(evaluators)
        for candidate in pool:
            candidate.rejected = _rejection(candidate.text, cot) or (
                "unfinished at the token cap" if candidate.capped else None
            )
        ranked = sorted(range(len(pool)), key=lambda i: pool[i].score, reverse=True)
        usable = [i for i in ranked if pool[i].rejected is None]
        note = "best"
        closing_only = [i for i in ranked if pool[i].closes and not pool[i].text.strip()]
        if usable:
            chosen: int | None = usable[0]
        else:
            last = split_sentences(cot)[-1].strip() if cot else ""
            fallback = [i for i in ranked if pool[i].text.strip() and pool[i].text.strip() != last]
            chosen = fallback[0] if fallback else None
            note = "all rejected: took the next best distinct candidate" if fallback else "nothing usable"
        if chosen is None and closing_only:
            chosen, note = closing_only[0], "a generator closed the reasoning"
        trace.steps.append(
            Step(
                step_index,
                pool,
                chosen,
                note,
                time.perf_counter() - started,
                stats.requests - requests,
                stats.cache_hits - hits,
            )
        )
        if chosen is None:
            trace.ended = "no usable candidate"
            break
        picked = pool[chosen]
        cot += picked.text
        trace.cot_tokens += picked.tokens
        if picked.closes:
            trace.ended = "the chosen sentence closed the reasoning"
            break
        if stop_on_any_close and any(c.closes for c in pool):
            closers = sorted({p.split("#")[0] for c in pool if c.closes for p in c.proposers})
            trace.ended = f"closed by {', '.join(closers)}"
            break
        if trace.cot_tokens >= max_cot_tokens:
            trace.ended = f"max CoT tokens ({max_cot_tokens})"
            break
    else:
        trace.ended = f"max steps ({max_steps})"
    explanation = Explanation(
        problem_id=problem.id,
        source_model=name,
        format="ensemble",
        cot=cot.strip(),
        final_text="",
        answer=None,
        temperature=temperature,
        seed=seed,
        truncated=not trace.ended.startswith(("the chosen", "closed by", "a generator")),
        usage=usage,
    )
    return explanation, trace
