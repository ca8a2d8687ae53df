"""Running a study: a validated config -> a plan of trials -> concurrent execution into the results DB.

The phases (CoT generation, ensemble CoTs, answer removal, every evaluator x condition) run side by side, and each
problem moves on as soon as its own inputs exist: its answer removal once its CoTs are made, its trials once those
are filtered, so no phase waits for another's slowest request (`Readiness`). Within a phase each model's items
stream through a pool of a few per request its endpoint lets in flight, made only as the pool takes them, so a
plan of a million trials holds no million coroutines; the endpoint's bound keeps the servers busy but not flooded
(`cotbridge.study.phases`). Finished items are stored in groups (one transaction each, within FLUSH_AFTER_S) and
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
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cotbridge.client import Bridge, Model
from cotbridge.cot import answer, build_ensemble, explain_samples, remove_answer, remove_answer_by_rule
from cotbridge.cot.ensemble import EnsembleTrace
from cotbridge.datasets import load_dataset
from cotbridge.errors import ConfigError
from cotbridge.options import EnsembleOptions
from cotbridge.providers.transport import public_url
from cotbridge.records import Answer, Condition, Explanation, Problem, Variant
from cotbridge.study.config import StudyConfig, StudySection
from cotbridge.study.explanations import CotKind, ExplanationSet, StudyCot
from cotbridge.study.fingerprint import TrialFingerprints
from cotbridge.study.models import StudyModels
from cotbridge.study.phases import (
    RULE_BOUND,
    Progress,
    ProgressCallback,
    RunSummary,
    Stream,
    _Phases,
    failure_text,
)
from cotbridge.study.readiness import Readiness
from cotbridge.study.results import ResultsDB, TrialRow

__all__ = ["Progress", "ProgressCallback", "RunSummary", "StudyRunner", "TrialInput", "run_study", "stored_config"]


@dataclass(frozen=True, slots=True)
class TrialInput:
    """What one trial gives its evaluator: the condition, the CoT's source name and sample index, and the CoT
    ("" for the empty condition)."""

    condition: Condition
    source: str
    sample_index: int
    cot: Explanation | str
    missing: str | None = None  # why the CoT is absent (its generation failed): the trial fails with it


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
        live_prompt_tokens=result.usage.live_prompt_tokens,
        live_completion_tokens=result.usage.live_completion_tokens,
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


class TrialPlan:
    """A study's trials, problem by problem, made from the CoTs of its run, and which of them an earlier run
    finished (counted in the summary as skipped or changed)."""

    def __init__(self, config: StudyConfig, cots: ExplanationSet, results: ResultsDB, summary: RunSummary) -> None:
        self.config = config
        self.name = config.study.name
        self.cots = cots
        self.results = results
        self.summary = summary

    def to_run(
        self, evaluator: str, problem: Problem, fingerprints: TrialFingerprints, resuming: bool
    ) -> list[tuple[Variant, TrialInput, str]]:
        """The trials of one evaluator on one problem to run, with their fingerprints: all of them in a fresh study;
        in a resumed one, all but those an earlier run finished with the same fingerprint."""
        trials = []
        for variant in self.config.variants:
            for given in self.inputs(variant, evaluator, problem):
                condition, source, index = given.condition, given.source, given.sample_index
                fingerprint = fingerprints.of(evaluator, variant, condition, source, index, problem)
                if resuming:
                    stored = self.results.finished_trial(
                        (self.name, condition, variant, evaluator, source, index, problem.id)
                    )
                    if stored is not None:
                        same = stored[0] == fingerprint
                        self.summary.skipped += same
                        self.summary.changed += not same
                        if same:
                            continue
                trials.append((variant, given, fingerprint))
        return trials

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
        self.models = StudyModels(config, bridge)
        self.cots = ExplanationSet()
        self.summary = RunSummary()
        self._phases = _Phases(self.summary, self.on_progress)
        self._plan = TrialPlan(config, self.cots, results, self.summary)

    async def run(self, problems: list[Problem]) -> RunSummary:
        """Checks the study, saves its config, then runs its phases side by side on `problems`: each problem's
        answer removal starts once its CoTs are made, its trials once those are filtered too."""
        self.models.check()
        _check_unique(problems)
        self.models.fill_default_prices()
        self.on_progress(Progress(phase="plan", plan=self.models.plan()))
        self.results.save_study(self.name, stored_config(self.config))
        resuming = self.results.has_finished_trials(self.name)  # before this run stores a trial
        sources = self._cot_sources()
        ensembles = list(self.config.ensembles) if Condition.ENSEMBLE in self.config.study.conditions else []
        made = Readiness(problems, len(sources) + len(ensembles))
        phases = [self._cot_phases(problems, sources, ensembles, made)]
        ready = made
        if Variant.WITHOUT_ANSWER in self.config.variants:
            ready = Readiness(problems, 1)  # 1: until the problem's CoTs are known, and with them its removals
            phases.append(self._answer_removal(made, ready))
        phases.append(self._trials(ready, resuming))
        await _side_by_side(phases)
        self.summary.notes = list(self.bridge.stats.notes)
        return self.summary

    # -- phases -------------------------------------------------------------------------------------------------

    def _cot_sources(self) -> list[tuple[CotKind, str]]:
        """What CoTs are made per problem: greedy ones of the transfer sources and of the evaluators (their own
        CoT, condition default), and each evaluator's sampled ones."""
        conditions = self.config.study.conditions
        greedy: set[str] = set()
        if Condition.TRANSFER in conditions:
            greedy.update(self.config.generators)
        if Condition.DEFAULT in conditions:
            greedy.update(self.config.evaluators)
        sampled = self.config.evaluators if Condition.SAMPLED in conditions else []
        return [
            (kind, name)
            for kind, names in ((CotKind.GREEDY, sorted(greedy)), (CotKind.SAMPLED, sampled))
            for name in names
        ]

    async def _cot_phases(
        self, problems: list[Problem], sources: list[tuple[CotKind, str]], ensembles: list[str], made: Readiness
    ) -> None:
        """The phases that make CoTs, side by side; once they end, no problem waits for a CoT any more."""
        phases = [self._explanations(problems, sources, made)]
        if ensembles:
            phases.append(self._ensembles(problems, made))
        await _side_by_side(phases)
        made.close()

    async def _explanations(self, problems: list[Problem], sources: list[tuple[CotKind, str]], made: Readiness) -> None:
        """Each source's CoTs of every problem."""
        streams = [
            Stream(name, self.models.bound(name), self._explain_jobs(name, problems, kind, made))
            for kind, name in sources
        ]

        def store(results: list[tuple[str, list[StudyCot]]]) -> None:
            cots = [cot for _, group in results for cot in group]
            self._keep(cots)
            self.summary.explanations += len(cots)
            for problem_id, _ in results:
                made.settle(problem_id)

        await self._phases.run("explanations", len(sources) * len(problems), streams, store)

    async def _ensembles(self, problems: list[Problem], made: Readiness) -> None:
        """Condition ensemble: one ensemble CoT per [ensembles.NAME] and problem, stored with its trace."""
        decoding = self.config.study.decoding
        streams: list[Stream[tuple[StudyCot, EnsembleTrace]]] = []
        for name, section in self.config.ensembles.items():
            generators = {n: self.models.get(n) for n in section.generators}
            evaluators = {n: self.models.get(n) for n in section.evaluators}
            bound = sum(self.models.bound(n) for n in {*section.generators, *section.evaluators})
            jobs = self._ensemble_jobs(name, problems, generators, evaluators, section.options(decoding), made)
            streams.append(Stream(name, bound, jobs))

        def store(built: list[tuple[StudyCot, EnsembleTrace]]) -> None:
            for cot, _ in built:
                self.cots.add(cot)
            self.results.put_explanations([cot.row(self.name, json.dumps(trace.as_dict())) for cot, trace in built])
            self.summary.explanations += len(built)
            for cot, _ in built:
                made.settle(cot.explanation.problem_id)

        await self._phases.run("ensembles", len(streams) * len(problems), streams, store)

    async def _answer_removal(self, made: Readiness, removed: Readiness) -> None:
        """The without_answer variant of every CoT, by the rule filter or the filter model, problem by problem
        as their CoTs are made."""
        filter_name = self.config.study.filter_model
        shown = filter_name if filter_name is not None else "rule"
        bound = self.models.bound(filter_name) if filter_name in self.config.models else RULE_BOUND

        def store(filtered: list[StudyCot]) -> None:
            self._keep(filtered)
            for cot in filtered:
                removed.settle(cot.explanation.problem_id)

        jobs = self._removal_jobs(filter_name, made, removed)
        await self._phases.run("answer removal", 0, [Stream(shown, bound, jobs)], store)
        removed.close()

    async def _trials(self, ready: Readiness, resuming: bool) -> None:
        """Every evaluator x variant x problem x condition, problem by problem as their CoTs are ready, but those
        an earlier run finished with the same fingerprint (a trial whose study changed is done again)."""
        fingerprints = TrialFingerprints(self.config)
        streams = [
            Stream(evaluator, self.models.bound(evaluator), self._trial_jobs(evaluator, ready, fingerprints, resuming))
            for evaluator in self.config.evaluators
        ]
        await self._phases.run("trials", 0, streams, self._store_trials, cached=lambda done: done[1])

    def _store_trials(self, done: list[tuple[TrialRow, bool]]) -> None:
        self.results.put_trials([row for row, _ in done])
        for row, _ in done:
            self.summary.count(row)

    # -- the jobs of a phase, made as its pool takes them ------------------------------------------------------

    def _explain_jobs(
        self, name: str, problems: list[Problem], kind: CotKind, made: Readiness
    ) -> Iterator[Awaitable[tuple[str, list[StudyCot]]]]:
        for problem in problems:
            yield self._explain(name, problem, kind, made)

    def _ensemble_jobs(
        self,
        name: str,
        problems: list[Problem],
        generators: dict[str, Model],
        evaluators: dict[str, Model],
        options: EnsembleOptions,
        made: Readiness,
    ) -> Iterator[Awaitable[tuple[StudyCot, EnsembleTrace]]]:
        for problem in problems:
            yield self._ensemble(name, problem, generators, evaluators, options, made)

    async def _removal_jobs(
        self, filter_name: str | None, made: Readiness, removed: Readiness
    ) -> AsyncIterator[Awaitable[StudyCot]]:
        """The answer removal of each problem's CoTs, once they are made."""
        async for problem in made.ready():
            cots = self.cots.of_problem(Variant.FULL, problem.id)
            removed.expect(problem.id, len(cots))
            removed.settle(problem.id)  # its CoTs are known
            if cots:
                self.on_progress(Progress(phase="answer removal", more=len(cots)))
            for cot in cots:
                yield self._remove_answer(cot, filter_name, removed)

    async def _trial_jobs(
        self, evaluator: str, ready: Readiness, fingerprints: TrialFingerprints, resuming: bool
    ) -> AsyncIterator[Awaitable[tuple[TrialRow, bool]]]:
        """One evaluator's trials, problem by problem as each problem's CoTs are ready."""
        async for problem in ready.ready():
            trials = self._plan.to_run(evaluator, problem, fingerprints, resuming)
            if trials:
                self.on_progress(Progress(phase="trials", model=evaluator, more=len(trials)))
            for variant, given, fingerprint in trials:
                yield self._trial(evaluator, problem, variant, given, fingerprint)

    # -- one item of a phase ------------------------------------------------------------------------------------

    async def _explain(self, name: str, problem: Problem, kind: CotKind, made: Readiness) -> tuple[str, list[StudyCot]]:
        """A source's CoTs of one problem, with the problem's id (settled in `made` once they are stored)."""
        study, decoding = self.config.study, self.config.study.decoding
        if kind == CotKind.GREEDY:
            samples, temperature, seed = 1, 0.0, None
        else:
            samples, temperature, seed = study.samples, decoding.sampled_temperature, decoding.seed
        try:
            explained = await explain_samples(
                self.models.get(name),
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
            made.settle(problem.id)
            raise
        return problem.id, [StudyCot(Variant.FULL, kind, name, e) for e in explained]

    async def _ensemble(
        self,
        name: str,
        problem: Problem,
        generators: dict[str, Model],
        evaluators: dict[str, Model],
        options: EnsembleOptions,
        made: Readiness,
    ) -> tuple[StudyCot, EnsembleTrace]:
        try:
            built, trace = await build_ensemble(problem, generators, evaluators, options, name=f"ensemble:{name}")
        except Exception as exc:
            self.cots.fail(self.config.variants, CotKind.ENSEMBLE, name, problem.id, failure_text(exc))
            made.settle(problem.id)
            raise
        return StudyCot(Variant.FULL, CotKind.ENSEMBLE, name, built), trace

    async def _remove_answer(self, cot: StudyCot, filter_name: str | None, removed: Readiness) -> StudyCot:
        try:
            if filter_name is None or filter_name == "rule":
                filtered = remove_answer_by_rule(cot.explanation)
            else:
                filtered = await remove_answer(cot.explanation, self.models.get(filter_name))
        except Exception as exc:
            problem_id = cot.explanation.problem_id
            self.cots.fail([Variant.WITHOUT_ANSWER], cot.kind, cot.source, problem_id, failure_text(exc))
            removed.settle(problem_id)
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
            result = await ask_trial(self.models.get(evaluator_name), problem, variant, given, self.config.study)
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


def _check_unique(problems: list[Problem]) -> None:
    """Refuses a problem list with an id twice: results are stored by problem id, so one would overwrite the
    other."""
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise ConfigError(f"problem id {problem.id!r} appears twice in the study's problems; give each its own id")
        seen.add(problem.id)


async def _side_by_side(phases: list[Coroutine[Any, Any, None]]) -> None:
    """Runs phases at the same time; the first to fail stops the others, and its error is raised as it is."""
    tasks = [asyncio.ensure_future(phase) for phase in phases]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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
