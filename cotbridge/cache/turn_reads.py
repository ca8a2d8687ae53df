"""Read transactions shared by the cache lookups of one turn of the event loop.

A lookup outside a transaction opens and closes one of its own, and in WAL mode each of those takes and releases
the file's locks (system calls): lookups made in the same turn (a `gather` of many requests makes thousands) share
one transaction instead, ended at the loop's next turn and whenever a store of this thread writes (all of the
thread's shared transactions: the writing connection's must end first, the others must see the rows). So a lookup
sees every row whose commit this process has seen: a batch of the group commit is seen by the turn its callers
resume in, since the turn's end was scheduled before they were; a row another process commits meanwhile is seen
from the next turn on, as if it had been committed a moment later.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from weakref import WeakSet

_this_thread = threading.local()  # each thread's open shared transactions (a connection belongs to one thread)


def _open_here() -> WeakSet[TurnReads]:
    opened: WeakSet[TurnReads] | None = getattr(_this_thread, "reads", None)
    if opened is None:
        opened = _this_thread.reads = WeakSet()
    return opened


def end_shared_reads() -> None:
    """Ends this thread's shared read transactions: called before a store of this thread writes."""
    for reads in list(_open_here()):
        reads.end()


class TurnReads:
    """The shared read transaction of one connection. `loop`: the loop whose turn it belongs to (None: none open);
    a lookup checks it against the running loop and calls `begin` when they differ."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.loop: asyncio.AbstractEventLoop | None = None

    def begin(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Opens the transaction for this turn of `loop` (None, outside any loop: none, each lookup has its own)."""
        self.end()  # one a stopped loop never ended
        if loop is None:
            return
        self._conn.execute("BEGIN")
        self.loop = loop
        _open_here().add(self)
        loop.call_soon(self.end)

    def end(self) -> None:
        """Ends the open transaction, if any."""
        if self.loop is None:
            return
        self.loop = None
        _open_here().discard(self)
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
