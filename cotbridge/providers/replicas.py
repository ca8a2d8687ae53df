"""Replicas: several servers with the same weights behind one endpoint.

A `ReplicaSet` looks like one `Endpoint` to a provider. Each request goes to the live replica with the fewest
outstanding requests. A replica that fails with a connection error or a 5xx is taken out for a cool-down (30 s,
doubling while it keeps failing, at most 10 min) and the request is tried again at once on another live replica;
when every replica is out, the one whose cool-down ends first is tried after the usual backoff. Attempts over all
replicas count against the retry policy's `max_attempts`.

Its identity in cache keys (`public_url`) is the constant `REPLICAS_ID`, not the URLs: replicas serve the same
weights, so a rerun against other replicas is answered from the cache (the provider and served model are in the key
anyway). A model with one base_url is given a plain Endpoint and pays nothing for this.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from cotbridge.errors import APIConnectionError, ProviderError
from cotbridge.providers.transport import Endpoint, TransientFailure
from cotbridge.providers.wire import Wire

REPLICAS_ID = "replicas"
COOL_DOWN_S = 30.0
MAX_COOL_DOWN_S = 600.0


def ejects(failure: TransientFailure) -> bool:
    """A connection error or a 5xx says the server is unwell; a 429, a timeout or a malformed body may not."""
    error = failure.error
    return isinstance(error, APIConnectionError) or (error.status is not None and error.status >= 500)


class ReplicaSet(Endpoint):
    """Endpoints of one model's replicas, owned by the bridge (this set closes none of them)."""

    def __init__(self, members: Sequence[Endpoint], *, cool_down_s: float = COOL_DOWN_S) -> None:
        first = members[0]
        super().__init__(
            first.base_url,
            api_key=None,
            max_concurrency=first.max_concurrency,
            timeout_s=first.timeout_s,
            retry=first.retry,
            stats=first.stats,
        )
        self.public_url = REPLICAS_ID
        self.members = tuple(members)
        self.cool_down_s = cool_down_s
        self.outstanding = [0] * len(members)
        self.ejected_until = [0.0] * len(members)
        self._failures = [0] * len(members)
        self._next = 0  # where ties start, so sequential requests take turns

    def pick(self) -> int:
        """The live replica with the fewest outstanding requests; if none is live, the one back first."""
        now = time.monotonic()
        count = len(self.members)
        best = -1
        for step in range(count):
            i = (self._next + step) % count
            if self.ejected_until[i] <= now and (best < 0 or self.outstanding[i] < self.outstanding[best]):
                best = i
        self._next = (self._next + 1) % count
        if best < 0:
            best = min(range(count), key=self.ejected_until.__getitem__)
        return best

    def live(self) -> int:
        now = time.monotonic()
        return sum(until <= now for until in self.ejected_until)

    def _eject(self, i: int) -> None:
        # Requests already in flight to a replica that just went out fail together; they count as one failure.
        now = time.monotonic()
        if self.ejected_until[i] > now:
            return
        self._failures[i] += 1
        self.ejected_until[i] = now + min(self.cool_down_s * 2 ** (self._failures[i] - 1), MAX_COOL_DOWN_S)

    def request(
        self,
        method: str,
        path: str,
        body: Any | None = None,
        *,
        model: str,
        wire: Wire | None,
        root: bool = False,
    ) -> Awaitable[Any]:
        return self._send(method, path, body, model, wire, root)

    async def _send(self, method: str, path: str, body: Any | None, model: str, wire: Wire | None, root: bool) -> Any:
        attempts = 0
        while True:
            i = self.pick()
            attempts += 1
            self.outstanding[i] += 1
            try:
                result = await self.members[i].attempt(method, path, body, model=model, wire=wire, root=root)
            except TransientFailure as failure:
                last = failure
            except ProviderError:
                self.stats.errors += 1
                raise
            else:
                # An answer shows the replica is well again, even one that went out meanwhile.
                self._failures[i] = 0
                self.ejected_until[i] = 0.0
                return result
            finally:
                self.outstanding[i] -= 1
            if attempts >= self.retry.max_attempts:
                self.stats.errors += 1
                raise last.exhausted(attempts) from None
            self.stats.retries += 1
            if ejects(last):
                self._eject(i)
                if self.live():
                    continue  # another replica can take it now
            await asyncio.sleep(self.backoff_s(attempts, last))
