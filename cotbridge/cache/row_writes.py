"""The SQL that stores response rows: one short transaction of multi-row INSERTs.

Shared by the store (on the event loop's thread, or its writer thread) and the cache's writer process, which is
why this module imports nothing heavier than the standard library and `cotbridge.cache.sqlite`."""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import Any

from cotbridge.cache.sqlite import BUSY_TIMEOUT_MS, write_transaction

# Columns in the order of `cotbridge.cache.store.ResponseRecord`'s fields, then the time stored.
INSERT = (
    "INSERT OR IGNORE INTO responses (key, op, provider, endpoint, model, sample_index, request, response, latency_s,"
    " prompt_tokens, completion_tokens, reasoning_tokens, content, reasoning, finish_reason, logprobs, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
Row = tuple[Any, ...]

# Rows per INSERT statement: one multi-row INSERT binds all its rows and then runs one SQLite step, where
# executemany runs a step per row (and, in a thread, lets go of the GIL around each, each time waiting to get it
# back). 32 rows x 17 columns stay under SQLite's oldest limit on bound parameters (999).
ROWS_PER_INSERT = 32
_COLUMNS = INSERT.count("?")


@cache
def insert_of(count: int) -> str:
    """The INSERT of `count` rows (statement texts are few: powers of two up to ROWS_PER_INSERT)."""
    values = "(" + ", ".join("?" * _COLUMNS) + ")"
    return INSERT.partition(" VALUES ")[0] + " VALUES " + ", ".join([values] * count)


def commit_rows(conn: sqlite3.Connection, rows: list[Row]) -> sqlite3.Error | None:
    """One transaction inserting the rows (a key already stored, by another process, is kept); the error if any.
    The rows go in multi-row INSERTs of power-of-two sizes, so that sqlite3 keeps a handful of statements compiled."""
    try:
        with write_transaction(conn):
            start, total = 0, len(rows)
            while start < total:
                count = min(ROWS_PER_INSERT, 1 << ((total - start).bit_length() - 1))
                conn.execute(insert_of(count), [value for row in rows[start : start + count] for value in row])
                start += count
    except sqlite3.Error as exc:
        return exc
    return None


def commit_rows_without_waiting(conn: sqlite3.Connection, rows: list[Row]) -> sqlite3.Error | None:
    """`commit_rows` on a connection that waits for the lock elsewhere: here it fails at once when the lock is taken
    (only BEGIN IMMEDIATE takes it; without automatic checkpoints nothing after it waits)."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        return commit_rows(conn, rows)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def is_busy(error: BaseException | None) -> bool:
    """Whether a write failed only because another connection holds the lock (SQLITE_BUSY and its variants)."""
    return isinstance(error, sqlite3.OperationalError) and (error.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY
