"""SQLite files as cotbridge uses them: one connection setup, one short-write-transaction helper, and one
migrations mechanism, shared by the response cache and the results DB (which may live in the same file).

WAL with synchronous=NORMAL and a busy timeout lets several processes share one file; writes are short
transactions taken at once; no transaction is ever open across a network await (everything here is synchronous).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlite_utils

BUSY_TIMEOUT_MS = 60_000
MMAP_BYTES = 1 << 30
PAGE_CACHE_KIB = 64 * 1024
MIGRATIONS_TABLE = "_cotbridge_migrations"

# (name, function): a schema change, applied once per file. Lists are ordered; append, never edit.
Migration = tuple[str, Callable[[sqlite_utils.Database], None]]


def connect(path: str) -> sqlite3.Connection:
    """A connection with the cache's settings: autocommit (transactions are explicit and short), a busy timeout,
    WAL and synchronous=NORMAL on files, memory-mapped reads and a large page cache."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if path != ":memory:":
        _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    # Lookups read through memory-mapped pages instead of a read() call per page, and a larger page cache keeps
    # a study's working set: a warm run is mostly random primary-key reads.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL is a property of the file, set once. Switching to it needs a moment alone with the file, and SQLite
    # answers "locked" at once (not after busy_timeout) while another process opens it: so wait here.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction, taken at once (BEGIN IMMEDIATE) so that writers queue on the busy timeout
    instead of failing on an upgrade; committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> None:
    """Applies the migrations a file has not seen yet, in order, recording each by name. One immediate transaction
    serializes two processes that open a new file at the same moment."""
    db = sqlite_utils.Database(conn)
    with write_transaction(conn):
        db[MIGRATIONS_TABLE].create(  # type: ignore[union-attr]
            {"name": str, "applied_at": float}, pk="name", if_not_exists=True
        )
        done = {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
        for name, apply in migrations:
            if name not in done:
                apply(db)
                conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", (name, time.time()))
