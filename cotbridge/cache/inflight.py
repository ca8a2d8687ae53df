"""In-flight de-duplication: identical requests running at once share one network call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LeaderLeft(Exception):
    """Told to the callers waiting on a call whose own caller left before it ended: one of them runs it again."""


class Flight(Generic[T]):
    """One shared call, run by its first caller (the leader), who reports how it ended with `landed` or `left`. The
    other callers wait on a future each, so that one leaving cancels only its own."""

    __slots__ = ("key", "running", "waiters")

    def __init__(self, key: str, running: dict[str, Flight[T]]) -> None:
        self.key = key
        self.running = running
        self.waiters: list[asyncio.Future[T]] | None = None  # made by the first to join: most calls have none

    def landed(self, result: T) -> None:
        """The call returned: every caller still waiting gets its result."""
        self._forget()
        for waiter in self.waiters or ():
            if not waiter.done():
                waiter.set_result(result)

    def left(self, error: BaseException) -> None:
        """The call failed, or its leader left (cancelled): either way, the next caller starts anew."""
        self._forget()
        if isinstance(error, asyncio.CancelledError):
            error = LeaderLeft()
        for waiter in self.waiters or ():
            if not waiter.done():  # (the future of a waiter whose task is cancelled is cancelled at once)
                waiter.set_exception(error)

    def _forget(self) -> None:
        if self.running.get(self.key) is self:
            del self.running[self.key]


class SingleFlight(Generic[T]):
    """One call per key at a time; callers that arrive while it runs await the same result.

    The first caller runs the call in its own task: a task per call would cost every uncached request three more
    event-loop callbacks and several objects for the garbage collector, for a sharing that is rare. If that caller
    leaves (cancelled: a timeout, a closed run) while others still wait, one of them runs the call again (the request
    is then sent twice), so the call lives exactly as long as some caller wants it. A failure reaches every waiter
    and is not remembered: the next caller tries again.

    `run` does it all for a coroutine; the hot path uses its parts (`join`, `lead`) to spare a coroutine frame.
    """

    def __init__(self) -> None:
        self._running: dict[str, Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def join(self, key: str) -> asyncio.Future[T] | None:
        """A future of the call running for `key` (it raises LeaderLeft if that call's caller left: try again), or
        None when none runs: then `lead` it."""
        flight = self._running.get(key)
        if flight is None:
            return None
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if flight.waiters is None:
            flight.waiters = []
        flight.waiters.append(waiter)
        return waiter

    def lead(self, key: str) -> Flight[T]:
        """Registers the caller's call for `key`: report its end on the returned Flight (`landed` or `left`)."""
        flight = self._running[key] = Flight(key, self._running)
        return flight

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Returns (result, joined): joined is True when this caller shared another caller's call."""
        while (shared := self.join(key)) is not None:
            try:
                return await shared, True
            except LeaderLeft:
                continue  # run it here, or join the caller that took it over first
        flight = self.lead(key)
        try:
            result = await call()
        except BaseException as error:
            flight.left(error)
            raise
        flight.landed(result)
        return result, False
