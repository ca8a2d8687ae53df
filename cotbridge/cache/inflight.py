"""In-flight de-duplication: identical requests running at once share one network call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    """One shared call: its task and how many callers still wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[T] | None = None
        self.waiters = 0


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; callers that arrive while it runs await the same result.

    The call runs in its own task, so a caller that is cancelled (a timeout, a closed run) leaves it to the others;
    it is cancelled only when its last caller has gone. A failure reaches every waiter and is not remembered: the
    next caller tries again.
    """

    def __init__(self) -> None:
        self._running: dict[str, _Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Returns (result, joined): joined is True when this caller shared another caller's call."""
        flight = self._running.get(key)
        joined = flight is not None
        if flight is None:
            flight = self._running[key] = _Flight()
            flight.task = asyncio.create_task(self._call(key, flight, call))
        task = flight.task
        assert task is not None
        flight.waiters += 1
        try:
            return await asyncio.shield(task), joined
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not task.done():
                self._forget(key, flight)
                task.cancel()

    async def _call(self, key: str, flight: _Flight[T], call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        finally:
            # Before any waiter resumes: a caller arriving from now on starts a new call.
            self._forget(key, flight)

    def _forget(self, key: str, flight: _Flight[T]) -> None:
        if self._running.get(key) is flight:
            del self._running[key]
