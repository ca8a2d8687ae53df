"""Which problems are ready for a study's next step: a count per problem of what it still waits for (its CoTs
being made, then their answer-removed variants), and the ready problems in the order they became ready.

The phases of a study run side by side; a problem's trials start as soon as its own CoTs exist, so the servers
are not left waiting for the slowest CoT of the whole study. Every waited-for item must be settled, made or failed:
the phases settle an item when its result is committed or its job raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from cotbridge.records import Problem


class Readiness:
    """Problems and how many items each still waits for; `ready` gives each consumer every problem once its count
    is zero, in the order that happened."""

    def __init__(self, problems: list[Problem], waits: int) -> None:
        self.total = len(problems)
        self._problems = {problem.id: problem for problem in problems}
        self._waiting = {problem.id: waits for problem in problems} if waits else {}
        self._ready: list[Problem] = [] if waits else list(problems)
        self._grown: asyncio.Future[None] | None = None

    def expect(self, problem_id: str, count: int) -> None:
        """Adds `count` items the problem waits for (known only once the step before it ended)."""
        self._waiting[problem_id] = self._waiting.get(problem_id, 0) + count

    def settle(self, problem_id: str, count: int = 1) -> None:
        """Marks `count` of the problem's items made or failed; at zero the problem is ready."""
        left = self._waiting[problem_id] - count
        if left > 0:
            self._waiting[problem_id] = left
            return
        del self._waiting[problem_id]
        self._ready.append(self._problems[problem_id])
        if self._grown is not None:
            self._grown.set_result(None)
            self._grown = None

    def close(self) -> None:
        """The steps that settle these problems have ended: nothing more will come, so every problem still waiting
        is ready (what it lacks is recorded as failed where it failed)."""
        for problem_id in list(self._waiting):
            self.settle(problem_id, self._waiting[problem_id])

    async def ready(self) -> AsyncIterator[Problem]:
        """Every problem as it becomes ready (those ready already first); ends after the last one."""
        index = 0
        while index < self.total:
            if index < len(self._ready):
                yield self._ready[index]
                index += 1
                continue
            if self._grown is None:
                self._grown = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._grown)
