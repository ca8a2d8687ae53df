"""Running a study: a validated config -> a plan of trials -> concurrent execution into the results DB.

Phases run in order (CoT generation, then answer removal, then every evaluator x condition); within a phase
every item runs at once and each endpoint's bound keeps the servers busy but not flooded. Finished trials are
stored as they finish and skipped on resume; every request goes through the response cache, so a resumed or
repeated study sends nothing it already sent. A failing model does not stop the others: its failures are
stored and listed at the end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cotbridge.client import Bridge, Model
from cotbridge.cot import answer, build_ensemble, explain, explain_samples, remove_answer, remove_answer_by_rule
from cotbridge.cot.ensemble import EnsembleTrace
from cotbridge.cot.transfer import resolve_mode
from cotbridge.datasets import load_dataset
from cotbridge.errors import BudgetExceeded, ConfigError, CotbridgeError
from cotbridge.records import Answer, Explanation, Problem
from cotbridge.study.config import StudyConfig
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

# -- running ----------------------------------------------------------------------------------------------------


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
    """What a run did: counts per phase, and every failure."""

    trials: int = 0
    skipped: int = 0
    explanations: int = 0
    failures: list[str] = field(default_factory=list)
    over_budget: int = 0  # items not run because they could have passed budget_usd


def _row_from_answer(
    study: str, condition: str, variant: str, evaluator: str, source: str, index: int, answer: Answer
) -> TrialRow:
    return TrialRow(
        study=study,
        condition=condition,
        variant=variant,
        evaluator=evaluator,
        source=source,
        sample_index=index,
        problem_id=answer.problem_id,
        mode=answer.mode,
        text=answer.text,
        answer=answer.score.parsed,
        normalized=answer.score.normalized,
        correct=answer.score.correct,
        prompt_text=answer.prompt_text,
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        reasoning_tokens=answer.usage.reasoning_tokens,
    )


def _row_from_explanation(study: str, kind: str, variant: str, source: str, e: Explanation) -> ExplanationRow:
    return ExplanationRow(
        study=study,
        problem_id=e.problem_id,
        source=source,
        kind=kind,
        sample_index=e.sample_index,
        variant=variant,
        cot=e.cot,
        final_text=e.final_text,
        answer=e.answer.parsed if e.answer else None,
        normalized=e.answer.normalized if e.answer else None,
        correct=e.answer.correct if e.answer else None,
        truncated=e.truncated,
        prompt_text=e.prompt_text,
        removal=json.dumps(asdict(e.removal)) if e.removal else None,
        prompt_tokens=e.usage.prompt_tokens,
        completion_tokens=e.usage.completion_tokens,
        reasoning_tokens=e.usage.reasoning_tokens,
    )


class StudyRunner:
    """Runs one study on one bridge, writing into one results DB."""

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
        self.models: dict[str, Model] = {}
        self.names: dict[str, str] = {}  # model string -> its [models] name, the name results are stored under
        self.summary = RunSummary()
        # explanations[(variant, kind)][(source, problem_id, sample_index)]
        self.explanations: dict[tuple[str, str], dict[tuple[str, str, int], Explanation]] = {}

    def _model(self, name: str) -> Model:
        if name not in self.models:
            section = self.config.models[name]
            try:
                self.models[name] = self.bridge.model(section.model, options=section.options())
            except ConfigError as exc:
                raise ConfigError(f"[models.{name}]: {exc}") from None
            self.names[self.models[name].name] = name
        return self.models[name]

    def check(self) -> None:
        """Everything that can be known wrong before the first request: models, keys, injection modes."""
        for name in self.config.models:
            model = self._model(name)
            section = self.config.models[name]
            if section.generator and "transfer" in self.config.study.conditions:
                visibility = model.capabilities.reasoning_visibility
                if visibility != "raw":
                    raise ConfigError(
                        f"[models.{name}]: {model.name} returns only a {visibility} of its reasoning, so its CoT "
                        "cannot be transferred; set generator = false"
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
        """Hosted models without a price in the study file run at the bundled one their Model got from the
        bridge (see `cotbridge.costs`); written into the study's config, so its report prices them too."""
        for name, section in self.config.models.items():
            price = self._model(name).price
            if section.price is None and price is not None:
                section.price = price

    def plan(self) -> list[dict[str, str]]:
        """How every model will run: its roles, thinking format, what it shows of its CoT, and the injection
        mode it gets a foreign CoT in. Call after `check()`."""
        rows = []
        for name, section in self.config.models.items():
            model = self._model(name)
            transfers = "transfer" in self.config.study.conditions
            roles = [("generator", section.generator and transfers), ("evaluator", section.evaluator)]
            rows.append(
                {
                    "name": name,
                    "model": model.name,
                    "roles": ", ".join(role for role, on in roles if on) or "-",
                    "thinking format": model.thinking_format.name,
                    "CoT visible": model.capabilities.reasoning_visibility,
                    "injection": resolve_mode(model, section.injection) if section.evaluator else "-",
                    "USD per M in/out": f"{section.price.input:g} / {section.price.output:g}" if section.price else "-",
                }
            )
        return rows

    async def _each(self, phase: str, jobs: list[tuple[str, Awaitable[Any]]], on_result: Callable[[Any], None]) -> None:
        """Runs (model name, awaitable) jobs concurrently; stores each result as it comes; failures are kept."""
        self.on_progress(Progress(phase=phase, total=len(jobs)))

        async def one(model_name: str, job: Awaitable[Any]) -> None:
            try:
                result = await job
            except BudgetExceeded as exc:
                if not self.summary.over_budget:
                    self.summary.failures.append(f"budget reached: {exc}")
                self.summary.over_budget += 1
                self.on_progress(Progress(phase=phase, model=model_name, done=1, error="over budget"))
                return
            except CotbridgeError as exc:
                message = f"{phase} / {model_name}: {exc}"
                self.summary.failures.append(message)
                self.on_progress(Progress(phase=phase, model=model_name, done=1, error=str(exc)))
                return
            on_result(result)
            cached = bool(getattr(result, "cached", False))
            self.on_progress(Progress(phase=phase, model=model_name, done=1, cached=cached))

        await asyncio.gather(*(one(name, job) for name, job in jobs))

    async def run(self, problems: list[Problem]) -> RunSummary:
        config = self.config
        self.check()
        self.fill_default_prices()
        self.on_progress(Progress(phase="plan", plan=self.plan()))
        self.results.save_study(self.name, config.model_dump())
        decoding = config.study.decoding
        conditions = set(config.study.conditions)
        needs_greedy = conditions & {"default", "transfer"}
        sources = config.generators if "transfer" in conditions else []
        own_needed = config.evaluators if "default" in conditions else []
        greedy_sources = sorted(set(sources) | set(own_needed))

        # Phase 1: CoTs.
        jobs: list[tuple[str, Awaitable[Any]]] = []
        full = self.explanations.setdefault(("full", "greedy"), {})
        if needs_greedy:
            for name in greedy_sources:
                model = self._model(name)
                for p in problems:
                    jobs.append(
                        (
                            name,
                            explain(
                                model,
                                p,
                                max_tokens=decoding.cot_max_tokens,
                                answer_max_tokens=decoding.answer_max_tokens,
                                answer_prefix=decoding.answer_prefix,
                            ),
                        )
                    )
        sampled: dict[tuple[str, str, int], Explanation] = self.explanations.setdefault(("full", "sampled"), {})
        if "sampled" in conditions:
            for name in config.evaluators:
                model = self._model(name)
                for p in problems:
                    jobs.append(
                        (
                            name,
                            explain_samples(
                                model,
                                p,
                                config.study.samples,
                                temperature=decoding.sampled_temperature,
                                seed=decoding.seed,
                                max_tokens=decoding.cot_max_tokens,
                                answer_max_tokens=decoding.answer_max_tokens,
                                answer_prefix=decoding.answer_prefix,
                            ),
                        )
                    )

        def store_explanations(result: Explanation | list[Explanation]) -> None:
            items = result if isinstance(result, list) else [result]
            kind = "sampled" if isinstance(result, list) else "greedy"
            for e in items:
                (sampled if kind == "sampled" else full)[(e.source_model, e.problem_id, e.sample_index)] = e
            self.results.put_explanations(
                [_row_from_explanation(self.name, kind, "full", self.names[e.source_model], e) for e in items]
            )
            self.summary.explanations += len(items)

        await self._each("explanations", jobs, store_explanations)

        if "ensemble" in conditions:
            await self._build_ensembles(problems)

        # Phase 2: answer removal.
        if "without_answer" in config.variants:
            filter_name = config.study.filter_model
            jobs = []
            for kind in ("greedy", "sampled", "ensemble"):
                for e in self.explanations.get(("full", kind), {}).values():
                    if filter_name == "rule" or filter_name is None:
                        jobs.append(("rule", _ready(remove_answer_by_rule(e), kind)))
                    else:
                        jobs.append((filter_name, _tagged(remove_answer(e, self._model(filter_name)), kind)))

            def store_filtered(result: tuple[Explanation, str]) -> None:
                e, kind = result
                self.explanations.setdefault(("without_answer", kind), {})[
                    (e.source_model, e.problem_id, e.sample_index)
                ] = e
                self.results.put_explanations(
                    [_row_from_explanation(self.name, kind, "without_answer", self.names[e.source_model], e)]
                )

            await self._each("answer removal", jobs, store_filtered)

        # Phase 3: trials.
        finished = self.results.finished_trials(self.name)
        jobs = []
        for variant in config.variants:
            for evaluator_name in config.evaluators:
                evaluator = self._model(evaluator_name)
                for p in problems:
                    for condition, source, index, cot in self._trial_inputs(variant, evaluator_name, p):
                        key = (self.name, condition, variant, evaluator_name, source, index, p.id)
                        if key in finished:
                            self.summary.skipped += 1
                            continue
                        jobs.append((evaluator_name, self._trial(evaluator, p, condition, variant, source, index, cot)))

        def store_trial(row: TrialRow) -> None:
            self.results.put_trials([row])
            self.summary.trials += 1

        await self._each("trials", jobs, store_trial)
        return self.summary

    async def _build_ensembles(self, problems: list[Problem]) -> None:
        """Condition D: one ensemble CoT per [ensembles.NAME] and problem, stored with its trace."""
        decoding = self.config.study.decoding
        built = self.explanations.setdefault(("full", "ensemble"), {})
        jobs: list[tuple[str, Awaitable[Any]]] = []
        for ens_name, section in self.config.ensembles.items():
            generators = [self._model(n) for n in section.generators]
            evaluators = [self._model(n) for n in section.evaluators]
            self.names[f"ensemble:{ens_name}"] = ens_name
            for p in problems:
                job = build_ensemble(p, generators, evaluators, section.options(decoding), name=f"ensemble:{ens_name}")
                jobs.append((ens_name, job))

        def store(result: tuple[Explanation, EnsembleTrace]) -> None:
            explanation, trace = result
            built[(explanation.source_model, explanation.problem_id, 0)] = explanation
            row = _row_from_explanation(
                self.name, "ensemble", "full", self.names[explanation.source_model], explanation
            )
            row.trace = json.dumps(trace.as_dict())
            self.results.put_explanations([row])
            self.summary.explanations += 1

        await self._each("ensembles", jobs, store)

    def _trial_inputs(
        self, variant: str, evaluator_name: str, problem: Problem
    ) -> list[tuple[str, str, int, Explanation | str | None]]:
        """(condition, source's [models] name, sample index, CoT) of every trial of one evaluator on one problem."""
        conditions = self.config.study.conditions
        evaluator = self._model(evaluator_name).name
        inputs: list[tuple[str, str, int, Explanation | str | None]] = []
        greedy = self.explanations.get((variant, "greedy"), {})
        if "empty" in conditions and variant == "full":
            inputs.append(("empty", "", 0, ""))
        if "default" in conditions:
            own = greedy.get((evaluator, problem.id, 0))
            if own is not None:
                inputs.append(("default", evaluator_name, 0, own))
        if "sampled" in conditions:
            for (source, pid, index), e in self.explanations.get((variant, "sampled"), {}).items():
                if source == evaluator and pid == problem.id:
                    inputs.append(("sampled", evaluator_name, index, e))
        if "ensemble" in conditions:
            for (source, pid, _), e in self.explanations.get((variant, "ensemble"), {}).items():
                if pid == problem.id:
                    inputs.append(("ensemble", self.names[source], 0, e))
        if "transfer" in conditions:
            for source_name in self.config.generators:
                source = self._model(source_name).name
                given = greedy.get((source, problem.id, 0))
                if given is not None:
                    inputs.append(("transfer", source_name, 0, given))
        return inputs

    async def _trial(
        self,
        evaluator: Model,
        problem: Problem,
        condition: str,
        variant: str,
        source: str,
        index: int,
        cot: Explanation | str | None,
    ) -> TrialRow:
        decoding = self.config.study.decoding
        if condition == "default" and variant == "full" and isinstance(cot, Explanation):
            # The model's own greedy CoT and the answer it gave after it: nothing new to ask.
            given = Answer(
                problem_id=problem.id,
                model=evaluator.name,
                text=cot.final_text,
                score=cot.answer or problem.check(cot.final_text),
                mode="own",
                source_model=evaluator.name,
                prompt_text=cot.prompt_text,
            )
        else:
            given = await answer(
                evaluator, problem, cot, max_tokens=decoding.answer_max_tokens, answer_prefix=decoding.answer_prefix
            )
        return _row_from_answer(self.name, condition, variant, self.names[evaluator.name], source, index, given)


async def _ready(value: Explanation, kind: str) -> tuple[Explanation, str]:
    return value, kind


async def _tagged(job: Awaitable[Explanation], kind: str) -> tuple[Explanation, str]:
    return await job, kind


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
