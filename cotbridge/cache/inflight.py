"""In-flight de-duplication: identical requests running at once share one network call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    """One shared call: its task, and one future per caller waiting for it (a caller that leaves cancels only its
    own future, never the task the others wait on)."""

    __slots__ = ("key", "running", "task", "waiters")

    def __init__(self, key: str, running: dict[str, _Flight[T]], task: asyncio.Future[T]) -> None:
        self.key = key
        self.running = running
        self.task = task
        self.waiters: list[asyncio.Future[T]] = []

    def forget(self) -> None:
        if self.running.get(self.key) is self:
            del self.running[self.key]

    def finished(self, task: asyncio.Future[T]) -> None:
        """Hands the call's outcome to every waiter. The flight is forgotten first: a caller arriving from now on
        starts a new call."""
        self.forget()
        if task.cancelled():
            for waiter in self.waiters:
                waiter.cancel()
            return
        error = task.exception()
        for waiter in self.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(task.result())
            else:
                waiter.set_exception(error)


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; callers that arrive while it runs await the same result.

    The call runs in its own task, so a caller that is cancelled (a timeout, a closed run) leaves it to the others;
    it is cancelled only when its last caller has gone. A failure reaches every waiter and is not remembered: the
    next caller tries again. (`asyncio.shield` per caller would do, at two closures and two callbacks per caller
    where this takes one callback per call: it is on every uncached request's path.)
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
            # The call's own coroutine is the task: no wrapper frame to re-enter on each of its resumptions.
            flight = self._running[key] = _Flight(key, self._running, asyncio.ensure_future(call()))
            flight.task.add_done_callback(flight.finished)
        waiter: asyncio.Future[T] = flight.task.get_loop().create_future()
        flight.waiters.append(waiter)
        try:
            return await waiter, joined
        except asyncio.CancelledError:
            if waiter.cancelled() and not flight.task.done():  # this caller left while the call runs
                flight.waiters.remove(waiter)
                if not flight.waiters:
                    flight.forget()
                    flight.task.cancel()
            raise
