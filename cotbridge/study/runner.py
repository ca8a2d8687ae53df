"""Running a study: a validated config -> a plan of trials -> concurrent execution into the results DB.

Phases run in order (CoT generation, ensemble CoTs, answer removal, then every evaluator x condition); within a
phase each model's items stream through a pool of a few per request its endpoint lets in flight, made only as the
pool takes them, so a plan of a million trials holds no million coroutines; the endpoint's bound keeps the
servers busy but not flooded. Finished items are stored in groups (one transaction each, within FLUSH_AFTER_S) and
count as done once committed; a resumed run skips finished trials, found by primary-key lookups. Every request
goes through the response cache, so a resumed or repeated study sends nothing it already sent. A failing model
does not stop the others: its failures are listed at the end, and as nothing of them is stored, a resumed run
tries them again.

Everything is stored under the study's `[models]` and `[ensembles]` names, never under model strings: two entries
may run the same model (on two servers, or with other options) and stay apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from cotbridge.client import Bridge, Model
from cotbridge.cot import answer, build_ensemble, explain_samples, remove_answer, remove_answer_by_rule
from cotbridge.cot.ensemble import EnsembleTrace
from cotbridge.cot.transfer import resolve_mode
from cotbridge.datasets import load_dataset
from cotbridge.errors import BudgetExceeded, ConfigError, CotbridgeError
from cotbridge.options import EnsembleOptions
from cotbridge.providers.batch import MAX_REQUESTS as BATCH_JOB_REQUESTS
from cotbridge.providers.capabilities import greedy_text, provenance_text, thinking_text
from cotbridge.providers.transport import public_url
from cotbridge.records import Answer, Condition, Explanation, Problem, Variant
from cotbridge.study.config import StudyConfig, StudySection
from cotbridge.study.explanations import CotKind, ExplanationSet, StudyCot
from cotbridge.study.fingerprint import TrialFingerprints
from cotbridge.study.results import ResultsDB, TrialRow

T = TypeVar("T")


@dataclass(slots=True)
class Progress:
    """One event for whoever shows progress: a phase begins (total set) or an item ends."""

    phase: str
    model: str | None = None
    total: int | None = None
    done: int = 0
    cached: bool = False
    error: str | None = None
    plan: list[dict[str, str]] | None = None  # set once, before the first request (phase "plan")


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class RunSummary:
    """What a run did: counts per phase, every failure, and the bridge's notes (what a server's answers made
    cotbridge change, e.g. a reasoning summary the vendor refused)."""

    trials: int = 0
    skipped: int = 0
    explanations: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    over_budget: int = 0  # items not run because they could have passed budget_usd
    failed_trials: int = 0  # stored with their error; a resumed run tries them again
    changed: int = 0  # stored trials done again because the study changed what decides them

    def count(self, row: TrialRow) -> None:
        """Counts a stored trial: run, over budget, or failed (listed with where and why)."""
        if not row.failed:
            self.trials += 1
        elif row.error_kind == "BudgetExceeded":
            if not self.over_budget:
                self.failures.append(f"budget reached: {row.error}")
            self.over_budget += 1
        else:
            self.failed_trials += 1
            where = f"{row.condition}/{row.variant} {row.evaluator} <- {row.source or '-'} #{row.sample_index}"
            self.failures.append(f"trials / {where}, problem {row.problem_id}: {row.error}")


@dataclass(frozen=True, slots=True)
class TrialInput:
    """What one trial gives its evaluator: the condition, the CoT's source name and sample index, and the CoT
    ("" for the empty condition)."""

    condition: Condition
    source: str
    sample_index: int
    cot: Explanation | str
    missing: str | None = None  # why the CoT is absent (its generation failed): the trial fails with it


# Why a CoT that is not raw cannot be a transfer source, by visibility.
_NOT_RAW = {
    "summary": "returns only a summary of its reasoning",
    "omitted": "thinks but returns none of its reasoning (the vendor omits it)",
    "none": "returns no reasoning",
}


def failure_text(exc: BaseException) -> str:
    """An error as stored and listed: cotbridge's own messages as they are, anything else with its class."""
    return str(exc) if isinstance(exc, CotbridgeError) else f"{type(exc).__name__}: {exc}"


def failed_row(
    study: str, variant: Variant, evaluator: str, given: TrialInput, problem_id: str, kind: str, why: str
) -> TrialRow:
    """The stored row of a trial that failed: no answer, the error's kind and message."""
    outcome = dict(
        mode="failed", text=None, answer=None, normalized=None, correct=None, error_kind=kind, error=why[:2000]
    )
    return TrialRow(**_identity(study, variant, evaluator, given, problem_id), **outcome)  # type: ignore[arg-type]


def trial_row(study: str, variant: Variant, evaluator: str, given: TrialInput, result: Answer) -> TrialRow:
    """The stored row of one trial; `evaluator` is its [models] name."""
    return TrialRow(
        **_identity(study, variant, evaluator, given, result.problem_id),
        mode=result.mode,
        text=result.text,
        answer=result.score.parsed,
        normalized=result.score.normalized,
        correct=result.score.correct,
        prompt_text=result.prompt_text,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        reasoning_tokens=result.usage.reasoning_tokens,
        truncated=result.truncated,
    )


def _identity(study: str, variant: Variant, evaluator: str, given: TrialInput, problem_id: str) -> dict[str, Any]:
    """The fields that identify a trial (its key in the results DB)."""
    return dict(
        study=study,
        condition=given.condition,
        variant=variant,
        evaluator=evaluator,
        source=given.source,
        sample_index=given.sample_index,
        problem_id=problem_id,
    )


def stored_config(config: StudyConfig) -> dict[str, Any]:
    """The config as the results DB keeps it: server addresses without credentials or query strings (a key can hide
    in either), as keys are never stored."""
    data = config.model_dump(mode="json")
    for section in data["models"].values():
        url = section.get("base_url")
        if isinstance(url, list):  # replicas
            section["base_url"] = [public_url(each) for each in url]
        elif url:
            section["base_url"] = public_url(url)
    return data


def _not_cached(result: object) -> bool:
    return False


async def ask_trial(
    evaluator: Model, problem: Problem, variant: Variant, given: TrialInput, study: StudySection
) -> Answer:
    """The evaluator's answer in one trial (the default condition reuses the answer its own CoT ended with), asked
    once more with larger budgets when it was cut off and the study says so."""
    decoding, cot = study.decoding, given.cot
    if given.condition == Condition.DEFAULT and variant == Variant.FULL and isinstance(cot, Explanation):
        # The model's own greedy CoT and the answer it gave after it: nothing new to ask.
        result = Answer(
            problem_id=problem.id,
            model=evaluator.name,
            text=cot.final_text,
            score=cot.answer or problem.check(cot.final_text),
            mode="own",
            source_model=evaluator.name,
            prompt_text=cot.prompt_text,
            truncated=cot.truncated or cot.answer_truncated,
        )
        own = True
    else:
        result = await answer(
            evaluator, problem, cot, max_tokens=decoding.answer_max_tokens, answer_prefix=decoding.answer_prefix
        )
        own = False
    if result.truncated and study.retry_truncated:
        # Once more with larger budgets; the model's own CoT is then written again too.
        factor = study.retry_truncated
        result = await answer(
            evaluator,
            problem,
            None if own else cot,
            max_tokens=decoding.answer_max_tokens * factor,
            cot_max_tokens=decoding.cot_max_tokens * factor,
            answer_prefix=decoding.answer_prefix,
        )
    return result


@dataclass(slots=True)
class Stream(Generic[T]):
    """One model's jobs in a phase under the name progress shows: awaitables made lazily, as the phase takes them
    (a generator), and how many may run at once (`bound`)."""

    name: str
    bound: int
    jobs: Iterable[Awaitable[T]]


# A phase runs JOBS_PER_SLOT jobs of a model per request its endpoint lets in flight (a job waiting for a slot is
# ready the moment one frees); the rule filter makes no request and runs RULE_BOUND at once.
JOBS_PER_SLOT = 2
RULE_BOUND = 64

# A finished item counts as done only once its row is committed: rows are written in groups, one transaction per
# group of at most FLUSH_ROWS, never later than FLUSH_AFTER_S after the first of them finished. A killed run loses
# at most those uncommitted items, whose responses are in the cache already: redoing them sends nothing.
FLUSH_ROWS = 512
FLUSH_AFTER_S = 0.05


class _Batch(Generic[T]):
    """Finished items waiting for their group's commit; `flush` stores them and only then reports them done."""

    def __init__(self, store: Callable[[list[T]], None], on_done: Callable[[str, T], None]) -> None:
        self.store = store
        self.on_done = on_done
        self.pending: list[tuple[str, T]] = []
        self.oldest = 0.0

    def add(self, name: str, result: T) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append((name, result))
        if len(self.pending) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        done, self.pending = self.pending, []
        if not done:
            return
        self.store([result for _, result in done])
        for name, result in done:
            self.on_done(name, result)

    async def flush_regularly(self) -> None:
        """Commits whatever waits at least every FLUSH_AFTER_S, so a slow phase's items are not held back."""
        while True:
            wait = FLUSH_AFTER_S - (time.monotonic() - self.oldest) if self.pending else FLUSH_AFTER_S
            await asyncio.sleep(max(wait, 0.0))
            if self.pending and time.monotonic() - self.oldest >= FLUSH_AFTER_S:
                self.flush()


class _Phases:
    """Runs each phase's jobs through one bounded pool per model (a model's jobs are made only when one of its
    `bound` workers takes them, so memory follows the concurrency, not the plan) and stores the results in groups;
    a failure is reported, listed in the summary and does not stop the others."""

    def __init__(self, summary: RunSummary, on_progress: ProgressCallback) -> None:
        self.summary = summary
        self.on_progress = on_progress

    async def run(
        self,
        phase: str,
        total: int,
        streams: Iterable[Stream[T]],
        store: Callable[[list[T]], None],
        cached: Callable[[T], bool] = _not_cached,
    ) -> None:
        """Runs every stream's jobs, at most `bound` at once per stream, all streams at once; `store` writes a
        group of results (one transaction); `cached` says whether a result came from the cache."""
        self.on_progress(Progress(phase=phase, total=total))

        def done(name: str, result: T) -> None:
            self.on_progress(Progress(phase=phase, model=name, done=1, cached=cached(result)))

        batch = _Batch(store, done)
        flusher = asyncio.ensure_future(batch.flush_regularly())
        try:
            workers: list[asyncio.Future[None]] = []
            for stream in streams:
                jobs = iter(stream.jobs)  # shared by the stream's workers: each `next` makes one job
                workers += [
                    asyncio.ensure_future(self._worker(phase, stream.name, jobs, batch, flusher))
                    for _ in range(stream.bound)
                ]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for worker in workers:
                    worker.cancel()
                raise
        finally:
            flusher.cancel()
            with suppress(asyncio.CancelledError):
                await flusher
        batch.flush()

    async def _worker(
        self, phase: str, name: str, jobs: Iterator[Awaitable[T]], batch: _Batch[T], flusher: asyncio.Future[None]
    ) -> None:
        while True:
            if flusher.done():
                flusher.result()  # the results DB failed: stop the phase with its error
            job = next(jobs, None)
            if job is None:
                return
            try:
                result = await job
            except BudgetExceeded as exc:
                if not self.summary.over_budget:
                    self.summary.failures.append(f"budget reached: {exc}")
                self.summary.over_budget += 1
                self.on_progress(Progress(phase=phase, model=name, done=1, error="over budget"))
                continue
            except Exception as exc:  # one item's failure, whatever it is, is that item's alone
                self.summary.failures.append(f"{phase} / {name}: {failure_text(exc)}")
                self.on_progress(Progress(phase=phase, model=name, done=1, error=failure_text(exc)))
                continue
            batch.add(name, result)


class TrialPlan:
    """A study's trials in one fixed order per evaluator, made from the CoTs of its run, and which of them an
    earlier run finished (counted in the summary as skipped or changed)."""

    def __init__(self, config: StudyConfig, cots: ExplanationSet, results: ResultsDB, summary: RunSummary) -> None:
        self.config = config
        self.name = config.study.name
        self.cots = cots
        self.results = results
        self.summary = summary

    def planned(self, evaluator: str, problems: list[Problem]) -> Iterator[tuple[Variant, Problem, TrialInput]]:
        """Every planned trial of one evaluator, always in the same order."""
        for variant in self.config.variants:
            for problem in problems:
                for given in self.inputs(variant, evaluator, problem):
                    yield variant, problem, given

    def to_run(
        self, evaluator: str, problems: list[Problem], fingerprints: TrialFingerprints, resuming: bool
    ) -> bytearray:
        """One byte per planned trial of `evaluator`, in `planned` order: 1 to run it, 0 when an earlier run
        finished it with the same fingerprint. A fresh study looks nothing up."""
        plan = bytearray()
        for variant, problem, given in self.planned(evaluator, problems):
            run = True
            if resuming:
                key = (self.name, given.condition, variant, evaluator, given.source, given.sample_index, problem.id)
                stored = self.results.finished_trial(key)
                if stored is not None:
                    fingerprint = fingerprints.of(
                        evaluator, variant, given.condition, given.source, given.sample_index, problem
                    )
                    run = stored[0] != fingerprint
                    self.summary.skipped += not run
                    self.summary.changed += run
            plan.append(run)
        return plan

    def inputs(self, variant: Variant, evaluator: str, problem: Problem) -> Iterator[TrialInput]:
        """Every trial of one evaluator on one problem. A trial whose CoT could not be made is still listed, with
        the reason, so that it is stored as failed instead of silently missing. Names are [models] and
        [ensembles] names."""
        conditions, pid = self.config.study.conditions, problem.id
        if Condition.EMPTY in conditions and variant == Variant.FULL:
            yield TrialInput(Condition.EMPTY, "", 0, "")
        if Condition.DEFAULT in conditions:
            yield from self._given(variant, Condition.DEFAULT, CotKind.GREEDY, evaluator, pid, 1)
        if Condition.SAMPLED in conditions:
            yield from self._given(
                variant, Condition.SAMPLED, CotKind.SAMPLED, evaluator, pid, self.config.study.samples
            )
        if Condition.ENSEMBLE in conditions:
            for name in self.config.ensembles:
                yield from self._given(variant, Condition.ENSEMBLE, CotKind.ENSEMBLE, name, pid, 1)
        if Condition.TRANSFER in conditions:
            for source in self.config.generators:
                yield from self._given(variant, Condition.TRANSFER, CotKind.GREEDY, source, pid, 1)

    def _given(
        self, variant: Variant, condition: Condition, kind: CotKind, source: str, problem_id: str, expected: int
    ) -> Iterator[TrialInput]:
        """The trials of one condition and CoT source: one per CoT made, and one per CoT that failed."""
        made = {e.sample_index: e for e in self.cots.of_source(variant, kind, source, problem_id)}
        for index, cot in sorted(made.items()):
            yield TrialInput(condition, source, index, cot)
        why = self.cots.failure(variant, kind, source, problem_id)
        if why is not None:
            for index in range(expected):
                if index not in made:
                    yield TrialInput(condition, source, index, "", missing=f"its CoT could not be made: {why}")


class StudyRunner:
    """Runs one study on one bridge, writing into one results DB: one method per phase."""

    def __init__(
        self,
        config: StudyConfig,
        bridge: Bridge,
        results: ResultsDB,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config
        self.bridge = bridge
        self.results = results
        self.on_progress = on_progress or (lambda event: None)
        self.name = config.study.name
        self.models: dict[str, Model] = {}  # by [models] name
        self.cots = ExplanationSet()
        self.summary = RunSummary()
        self._phases = _Phases(self.summary, self.on_progress)
        self._plan = TrialPlan(config, self.cots, results, self.summary)

    def _model(self, name: str) -> Model:
        """The model of a [models] entry. Two entries with the same model string and options share one Model."""
        if name not in self.models:
            section = self.config.models[name]
            try:
                self.models[name] = self.bridge.model(section.model, options=section.options())
            except ConfigError as exc:
                raise ConfigError(f"[models.{name}]: {exc}") from None
        return self.models[name]

    def check(self) -> None:
        """Everything that can be known wrong before the first request: models, keys, injection modes."""
        for name, section in self.config.models.items():
            model = self._model(name)
            if section.generator and Condition.TRANSFER in self.config.study.conditions:
                visibility = model.capabilities.visibility
                if visibility != "raw":
                    raise ConfigError(
                        f"[models.{name}]: {model.name} {_NOT_RAW[visibility]}, so it has no CoT to transfer; set "
                        "generator = false (or, if it does return its raw reasoning, capabilities = "
                        '{ visibility = "raw" })'
                    )
                if model.thinking_format.name == "none":
                    raise ConfigError(
                        f"[models.{name}]: {model.name} has no reasoning channel (thinking format 'none'), so it "
                        "writes no CoT to transfer; set thinking_format (e.g. 'think-tags') or generator = false"
                    )
            if section.injection == "prefill":
                try:
                    resolve_mode(model, "prefill")
                except ConfigError as exc:
                    raise ConfigError(f"[models.{name}]: {exc}") from None

    def fill_default_prices(self) -> None:
        """Models without a price in the study file run at the price their Model has (the bridge gives hosted
        models the bundled one); written into the study's config, so its report prices them too."""
        for name, section in self.config.models.items():
            price = self._model(name).price
            if section.price is None and price is not None:
                section.price = price

    def plan(self) -> list[dict[str, str]]:
        """How every model will run: its roles, thinking format, what it shows of its CoT, how its thinking is
        asked for, whether its "greedy" requests are greedy, where its capabilities came from (a guessed model
        says so), and the injection mode it gets a foreign CoT in. Call after `check()`."""
        transfers = Condition.TRANSFER in self.config.study.conditions
        rows = []
        for name, section in self.config.models.items():
            model = self._model(name)
            roles = [("generator", section.generator and transfers), ("evaluator", section.evaluator)]
            rows.append(
                {
                    "name": name,
                    "model": model.name,
                    "roles": ", ".join(role for role, on in roles if on) or "-",
                    "thinking format": model.thinking_format.name,
                    "CoT visible": model.capabilities.visibility,
                    "thinking": thinking_text(model.capabilities),
                    "greedy": greedy_text(model.capabilities),
                    "capabilities from": provenance_text(model.capabilities),
                    "injection": resolve_mode(model, section.injection) if section.evaluator else "-",
                    "USD per M in/out": f"{section.price.input:g} / {section.price.output:g}" if section.price else "-",
                }
            )
        return rows

    async def run(self, problems: list[Problem]) -> RunSummary:
        """Checks the study, saves its config, then runs every phase on `problems`."""
        self.check()
        self.fill_default_prices()
        self.on_progress(Progress(phase="plan", plan=self.plan()))
        self.results.save_study(self.name, stored_config(self.config))
        await self._explanations(problems)
        if Condition.ENSEMBLE in self.config.study.conditions:
            await self._ensembles(problems)
        if Variant.WITHOUT_ANSWER in self.config.variants:
            await self._answer_removal()
        await self._trials(problems)
        self.summary.notes = list(self.bridge.stats.notes)
        return self.summary

    # -- phases -------------------------------------------------------------------------------------------------

    async def _explanations(self, problems: list[Problem]) -> None:
        """Greedy CoTs of the transfer sources and of the evaluators (their own CoT, condition default), and each
        evaluator's sampled CoTs."""
        conditions = self.config.study.conditions
        greedy: set[str] = set()
        if Condition.TRANSFER in conditions:
            greedy.update(self.config.generators)
        if Condition.DEFAULT in conditions:
            greedy.update(self.config.evaluators)
        sampled = self.config.evaluators if Condition.SAMPLED in conditions else []
        sources = [
            (kind, name)
            for kind, names in ((CotKind.GREEDY, sorted(greedy)), (CotKind.SAMPLED, sampled))
            for name in names
        ]
        streams = [Stream(name, self._bound(name), self._explain_jobs(name, problems, kind)) for kind, name in sources]

        def store(made: list[list[StudyCot]]) -> None:
            cots = [cot for group in made for cot in group]
            self._keep(cots)
            self.summary.explanations += len(cots)

        await self._phases.run("explanations", len(sources) * len(problems), streams, store)

    async def _ensembles(self, problems: list[Problem]) -> None:
        """Condition ensemble: one ensemble CoT per [ensembles.NAME] and problem, stored with its trace."""
        decoding = self.config.study.decoding
        streams: list[Stream[tuple[StudyCot, EnsembleTrace]]] = []
        for name, section in self.config.ensembles.items():
            generators = {n: self._model(n) for n in section.generators}
            evaluators = {n: self._model(n) for n in section.evaluators}
            bound = sum(self._bound(n) for n in {*section.generators, *section.evaluators})
            jobs = self._ensemble_jobs(name, problems, generators, evaluators, section.options(decoding))
            streams.append(Stream(name, bound, jobs))

        def store(built: list[tuple[StudyCot, EnsembleTrace]]) -> None:
            for cot, _ in built:
                self.cots.add(cot)
            self.results.put_explanations([cot.row(self.name, json.dumps(trace.as_dict())) for cot, trace in built])
            self.summary.explanations += len(built)

        await self._phases.run("ensembles", len(streams) * len(problems), streams, store)

    async def _answer_removal(self) -> None:
        """The without_answer variant of every CoT made so far, by the rule filter or the filter model."""
        filter_name = self.config.study.filter_model
        shown = filter_name if filter_name is not None else "rule"
        # A list, as the phase adds to the set it is taken from; the CoTs are in memory already.
        cots = list(self.cots.of_variant(Variant.FULL))
        bound = self._bound(filter_name) if filter_name in self.config.models else RULE_BOUND
        jobs = (self._remove_answer(cot, filter_name) for cot in cots)
        await self._phases.run("answer removal", len(cots), [Stream(shown, bound, jobs)], self._keep)

    async def _trials(self, problems: list[Problem]) -> None:
        """Every evaluator x variant x problem x condition, but those an earlier run finished with the same
        fingerprint (a trial whose study changed is done again). Each evaluator's trials are made as its pool
        takes them; what the plan keeps is one byte per planned trial (run it or not)."""
        fingerprints = TrialFingerprints(self.config)
        resuming = self.results.has_finished_trials(self.name)
        streams = []
        total = 0
        for evaluator in self.config.evaluators:
            plan = self._plan.to_run(evaluator, problems, fingerprints, resuming)
            total += plan.count(1)
            jobs = self._trial_jobs(evaluator, problems, plan, fingerprints)
            streams.append(Stream(evaluator, self._bound(evaluator), jobs))
        await self._phases.run("trials", total, streams, self._store_trials, cached=lambda done: done[1])

    def _store_trials(self, done: list[tuple[TrialRow, bool]]) -> None:
        self.results.put_trials([row for row, _ in done])
        for row, _ in done:
            self.summary.count(row)

    # -- the jobs of a phase, made as its pool takes them ------------------------------------------------------

    def _bound(self, name: str) -> int:
        """How many of a model's jobs a phase runs at once: a few per request its endpoint lets in flight (per
        replica), so that the endpoint never waits for the runner."""
        section = self.config.models[name]
        if section.batch:  # its requests wait together in a vendor's job: the bound is a job's size
            return BATCH_JOB_REQUESTS
        replicas = len(section.base_url) if isinstance(section.base_url, list) else 1
        return JOBS_PER_SLOT * replicas * (section.max_concurrency or self.bridge.max_concurrency)

    def _explain_jobs(self, name: str, problems: list[Problem], kind: CotKind) -> Iterator[Awaitable[list[StudyCot]]]:
        for problem in problems:
            yield self._explain(name, problem, kind)

    def _ensemble_jobs(
        self,
        name: str,
        problems: list[Problem],
        generators: dict[str, Model],
        evaluators: dict[str, Model],
        options: EnsembleOptions,
    ) -> Iterator[Awaitable[tuple[StudyCot, EnsembleTrace]]]:
        for problem in problems:
            yield self._ensemble(name, problem, generators, evaluators, options)

    def _trial_jobs(
        self, evaluator: str, problems: list[Problem], plan: bytearray, fingerprints: TrialFingerprints
    ) -> Iterator[Awaitable[tuple[TrialRow, bool]]]:
        for index, (variant, problem, given) in enumerate(self._plan.planned(evaluator, problems)):
            if plan[index]:
                fingerprint = fingerprints.of(
                    evaluator, variant, given.condition, given.source, given.sample_index, problem
                )
                yield self._trial(evaluator, problem, variant, given, fingerprint)

    # -- one item of a phase ------------------------------------------------------------------------------------

    async def _explain(self, name: str, problem: Problem, kind: CotKind) -> list[StudyCot]:
        study, decoding = self.config.study, self.config.study.decoding
        if kind == CotKind.GREEDY:
            samples, temperature, seed = 1, 0.0, None
        else:
            samples, temperature, seed = study.samples, decoding.sampled_temperature, decoding.seed
        try:
            made = await explain_samples(
                self._model(name),
                problem,
                samples,
                temperature=temperature,
                seed=seed,
                max_tokens=decoding.cot_max_tokens,
                answer_max_tokens=decoding.answer_max_tokens,
                answer_prefix=decoding.answer_prefix,
            )
        except Exception as exc:
            self.cots.fail(self.config.variants, kind, name, problem.id, failure_text(exc))
            raise
        return [StudyCot(Variant.FULL, kind, name, e) for e in made]

    async def _ensemble(
        self,
        name: str,
        problem: Problem,
        generators: dict[str, Model],
        evaluators: dict[str, Model],
        options: EnsembleOptions,
    ) -> tuple[StudyCot, EnsembleTrace]:
        try:
            made, trace = await build_ensemble(problem, generators, evaluators, options, name=f"ensemble:{name}")
        except Exception as exc:
            self.cots.fail(self.config.variants, CotKind.ENSEMBLE, name, problem.id, failure_text(exc))
            raise
        return StudyCot(Variant.FULL, CotKind.ENSEMBLE, name, made), trace

    async def _remove_answer(self, cot: StudyCot, filter_name: str | None) -> StudyCot:
        try:
            if filter_name is None or filter_name == "rule":
                filtered = remove_answer_by_rule(cot.explanation)
            else:
                filtered = await remove_answer(cot.explanation, self._model(filter_name))
        except Exception as exc:
            problem_id = cot.explanation.problem_id
            self.cots.fail([Variant.WITHOUT_ANSWER], cot.kind, cot.source, problem_id, failure_text(exc))
            raise
        return replace(cot, variant=Variant.WITHOUT_ANSWER, explanation=filtered)

    async def _trial(
        self, evaluator_name: str, problem: Problem, variant: Variant, given: TrialInput, fingerprint: str
    ) -> tuple[TrialRow, bool]:
        """One trial's row, and whether its answer came from the cache. A failure is the trial's row too."""
        if given.missing is not None:
            row = failed_row(self.name, variant, evaluator_name, given, problem.id, "MissingCoT", given.missing)
            return row, False
        try:
            result = await ask_trial(self._model(evaluator_name), problem, variant, given, self.config.study)
            row, cached = trial_row(self.name, variant, evaluator_name, given, result), result.cached
        except Exception as exc:  # whatever one trial raises is that trial's failure
            row, cached = (
                failed_row(
                    self.name, variant, evaluator_name, given, problem.id, type(exc).__name__, failure_text(exc)
                ),
                False,
            )
        row.fingerprint = fingerprint
        return row, cached

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _keep(self, cots: list[StudyCot], trace: str | None = None) -> None:
        """Adds CoTs to the run's set and stores them."""
        for cot in cots:
            self.cots.add(cot)
        self.results.put_explanations([cot.row(self.name, trace) for cot in cots])


async def run_study(
    config: StudyConfig,
    db_path: str | Path,
    *,
    on_progress: ProgressCallback | None = None,
    problems: list[Problem] | None = None,
) -> RunSummary:
    """Runs a study: the response cache and the results live in the same SQLite file `db_path`."""
    study = config.study
    problems = problems if problems is not None else load_dataset(study.dataset, sample=study.sample, seed=study.seed)
    results = ResultsDB(db_path)
    try:
        async with Bridge(
            cache=db_path, retry=study.retry.policy(), timeout_s=study.retry.timeout_s, budget_usd=study.budget_usd
        ) as bridge:
            runner = StudyRunner(config, bridge, results, on_progress)
            return await runner.run(problems)
    finally:
        results.close()
