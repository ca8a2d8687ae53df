"""The machinery of a study's phases: one bounded pool of workers per model, jobs made only as the pool takes
them, results stored in groups and reported done once committed, and the events progress is shown from.

A phase's jobs come from a plain iterable (made at once as a worker takes one) or from an async one, whose next job
may wait for what it depends on (a problem's CoTs, before its trials): the phases of a study then run at the same
time, each problem moving on as soon as its own inputs exist, so no phase waits for another's slowest request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cotbridge.errors import BudgetExceeded, CotbridgeError
from cotbridge.study.results import TrialRow

T = TypeVar("T")


@dataclass(slots=True)
class Progress:
    """One event for whoever shows progress: a phase begins (total set), learns of more items (`more`: phases
    run side by side, and one whose items wait for another's learns its size problem by problem), or an item
    ends."""

    phase: str
    model: str | None = None
    total: int | None = None
    more: int = 0
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


def failure_text(exc: BaseException) -> str:
    """An error as stored and listed: cotbridge's own messages as they are, anything else with its class."""
    return str(exc) if isinstance(exc, CotbridgeError) else f"{type(exc).__name__}: {exc}"


def _not_cached(result: object) -> bool:
    return False


@dataclass(slots=True)
class Stream(Generic[T]):
    """One model's jobs in a phase under the name progress shows: awaitables made lazily, as the phase takes them
    (a generator, or an async generator whose next job may wait for its inputs), and how many may run at once
    (`bound`)."""

    name: str
    bound: int
    jobs: Iterable[Awaitable[T]] | AsyncIterable[Awaitable[T]]


class _Jobs(Generic[T]):
    """A stream's jobs as its workers take them, one at a time: from an async source under a lock, as an async
    generator runs for one caller at a time (the others wait for the job it is waiting for)."""

    def __init__(self, jobs: Iterable[Awaitable[T]] | AsyncIterable[Awaitable[T]]) -> None:
        self._plain: Iterator[Awaitable[T]] | None = None
        self._waiting: AsyncIterator[Awaitable[T]] | None = None
        if isinstance(jobs, AsyncIterable):
            self._waiting = aiter(jobs)
        else:
            self._plain = iter(jobs)
        self._lock = asyncio.Lock()

    async def take(self) -> Awaitable[T] | None:
        """The next job, None when there are no more."""
        if self._plain is not None:
            return next(self._plain, None)
        async with self._lock:
            assert self._waiting is not None
            return await anext(self._waiting, None)


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
        group of results (one transaction); `cached` says whether a result came from the cache. `total` is the
        phase's size as known at its start: a phase whose jobs wait for their inputs announces more as it learns
        them (an event with `more`)."""
        self.on_progress(Progress(phase=phase, total=total))

        def done(name: str, result: T) -> None:
            self.on_progress(Progress(phase=phase, model=name, done=1, cached=cached(result)))

        batch = _Batch(store, done)
        flusher = asyncio.ensure_future(batch.flush_regularly())
        try:
            workers: list[asyncio.Future[None]] = []
            for stream in streams:
                jobs = _Jobs(stream.jobs)  # shared by the stream's workers: each `take` makes one job
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
        self, phase: str, name: str, jobs: _Jobs[T], batch: _Batch[T], flusher: asyncio.Future[None]
    ) -> None:
        while True:
            if flusher.done():
                flusher.result()  # the results DB failed: stop the phase with its error
            job = await jobs.take()
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
