"""Checkpoints of a cache file's write-ahead log, run off the event loop's thread.

In WAL mode a commit appends pages to the log; a checkpoint copies them back into the database file and syncs it
to disk. SQLite runs one inside the COMMIT that grows the log past 1,000 pages, on the committing connection: for
the cache, the event loop's thread, which then waits for the copy and the sync. Measured on 2 cores with 500-byte
responses written in batches of 32, that was half of what storing a response cost the loop (39 us of wall time per
row with automatic checkpoints, 18 us without). So the store's own connection turns them off
(`PRAGMA wal_autocheckpoint = 0`) and a thread of the store's checkpoints instead, as one statement (one release of
the GIL for the whole copy), after every `CHECKPOINT_EVERY_ROWS` rows the store wrote.

A PASSIVE checkpoint never waits for a lock and never blocks a reader or a writer. Nothing waits for it: the rows
are committed (in the log) before it starts. When the last connection to the file closes, SQLite checkpoints what
is left and removes the log.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

from cotbridge.cache.sqlite import connect

# About SQLite's own threshold (1,000 pages) for short responses: a row costs a page of the primary key's index
# (keys are random) and its share of a table page.
CHECKPOINT_EVERY_ROWS = 1000


def _checkpoint(conn: sqlite3.Connection) -> None:
    # On failure the rows are safe in the log; the next checkpoint, or the last connection's close, copies them.
    with suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


class Checkpointer:
    """Runs a PASSIVE checkpoint of `path` on a thread of its own once `written` has counted enough rows; at most
    one runs at a time (rows written meanwhile go to the next)."""

    def __init__(self, path: str, what: str) -> None:
        self._path = path
        self._what = what
        self._rows = 0
        self._thread: ThreadPoolExecutor | None = None  # made at the first checkpoint
        self._conn: sqlite3.Connection | None = None
        self._running: Future[None] | None = None
        self.runs = 0

    def written(self, rows: int) -> None:
        self._rows += rows
        if self._rows < CHECKPOINT_EVERY_ROWS or (self._running is not None and not self._running.done()):
            return
        self._rows = 0
        if self._thread is None or self._conn is None:
            self._conn = connect(self._path, self._what)  # used by the thread only, from here on
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cotbridge-cache-checkpoint")
        self._running = self._thread.submit(_checkpoint, self._conn)
        self.runs += 1

    def close(self) -> None:
        """Waits for a running checkpoint and closes the thread's connection."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
