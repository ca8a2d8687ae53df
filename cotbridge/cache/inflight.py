"""In-flight de-duplication: identical requests running at once share one network call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; callers that arrive while it runs await the same result.

    A failure reaches every waiter and is not remembered: the next caller tries again.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Returns (result, joined): joined is True when this caller shared another caller's call."""
        future = self._running.get(key)
        if future is not None:
            return await asyncio.shield(future), True
        future = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await call()
        except BaseException as exc:
            if not future.done():
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: no "never retrieved" warning when nobody joined
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._running[key]
