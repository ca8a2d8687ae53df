"""Batch jobs sent to hosted batch APIs, kept in the cache file (which is also a study's results DB), so that a run
killed while a job was running finds the job again and polls it instead of paying for it twice.

A job row holds the vendor's job id, the provider, served model, endpoint identity and vendor path it was sent
for, its last known status and when it was created and last updated; an item row links each request's
`custom_id` (derived from the request as sent, `cotbridge.providers.batch`) to the job holding it. The providers
layer only knows the `BatchLedger` protocol this store fulfils; the Bridge hands the store to batch models.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cotbridge.cache.sqlite import Migration, connect, database_error, open_database, write_transaction
from cotbridge.errors import ConfigError

if TYPE_CHECKING:
    import sqlite_utils

WHAT = "cache file"
# A job in one of these states holds no result worth waiting for: its requests are sent again.
DEAD_STATUSES = frozenset({"failed", "expired", "cancelled", "canceled", "gone"})


def _create_batch_jobs(db: sqlite_utils.Database) -> None:
    db["batch_jobs"].create(  # type: ignore[union-attr]
        {
            "job_id": str,
            "provider": str,
            "model": str,
            "endpoint": str,
            "path": str,
            "status": str,
            "requests": int,
            "created_at": float,
            "updated_at": float,
        },
        pk="job_id",
        not_null={"job_id", "provider", "model", "endpoint", "path", "status"},
    )
    db["batch_items"].create(  # type: ignore[union-attr]
        {"custom_id": str, "job_id": str}, pk=("custom_id", "job_id"), not_null={"custom_id", "job_id"}
    )
    db["batch_items"].create_index(["job_id"])  # type: ignore[union-attr]


# Ordered; each runs once per database file. Append new ones, never edit old ones.
MIGRATIONS: list[Migration] = [
    ("batch_0001_create_batch_jobs", _create_batch_jobs),
]

_FIND = (
    "SELECT j.job_id FROM batch_items i JOIN batch_jobs j ON j.job_id = i.job_id"
    " WHERE i.custom_id = ? AND j.provider = ? AND j.endpoint = ? AND j.model = ?"
    f" AND j.status NOT IN ({', '.join('?' * len(DEAD_STATUSES))}) ORDER BY j.created_at DESC LIMIT 1"
)


class BatchJobStore:
    """The batch jobs of one cache file (or ":memory:", where nothing outlives the process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = open_database(self.path, WHAT, MIGRATIONS)
        self._closed = False

    def _failure(self, exc: sqlite3.Error) -> ConfigError:
        if self._closed:
            return ConfigError(f"{WHAT} {self.path!r} is closed (its Bridge was closed): open a new Bridge")
        return database_error(exc, WHAT, self.path)

    def job_holding(self, custom_id: str, *, provider: str, endpoint: str, model: str) -> str | None:
        """The newest job of this provider, endpoint and model holding the request, unless it is dead."""
        try:
            row = self._conn.execute(_FIND, (custom_id, provider, endpoint, model, *sorted(DEAD_STATUSES))).fetchone()
        except sqlite3.Error as exc:
            raise self._failure(exc) from None
        return row[0] if row else None

    def record(
        self,
        job_id: str,
        *,
        provider: str,
        endpoint: str,
        model: str,
        path: str,
        status: str,
        custom_ids: Iterable[str],
    ) -> None:
        """Stores a job the vendor accepted, with the requests it holds (one short transaction)."""
        ids = list(custom_ids)
        now = time.time()
        try:
            with write_transaction(self._conn):
                self._conn.execute(
                    "INSERT OR REPLACE INTO batch_jobs (job_id, provider, model, endpoint, path, status, requests,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, provider, model, endpoint, path, status, len(ids), now, now),
                )
                self._conn.executemany(
                    "INSERT OR IGNORE INTO batch_items (custom_id, job_id) VALUES (?, ?)", [(i, job_id) for i in ids]
                )
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def update(self, job_id: str, status: str) -> None:
        """Records a job's status as last seen (written only when it changed)."""
        try:
            with write_transaction(self._conn):
                self._conn.execute(
                    "UPDATE batch_jobs SET status = ?, updated_at = ? WHERE job_id = ? AND status != ?",
                    (status, time.time(), job_id, status),
                )
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def jobs(self) -> list[dict[str, object]]:
        """Every job, newest first (for reports and tests)."""
        cursor = self._conn.execute(
            "SELECT job_id, provider, model, endpoint, path, status, requests, created_at, updated_at"
            " FROM batch_jobs ORDER BY created_at DESC"
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()


def batch_jobs_of(path: str | Path) -> list[dict[str, object]]:
    """The batch jobs recorded in a cache file, newest first, read without writing anything (a run in another
    thread or process may be writing it): none when the file or its job table does not exist yet."""
    if not Path(path).is_file():
        return []
    conn = connect(str(path), WHAT, read_only=True)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT job_id, provider, model, status, requests, created_at, updated_at FROM batch_jobs"
            " ORDER BY created_at DESC"
        ).fetchall()
    except sqlite3.OperationalError:  # no batch model has opened the file yet: no table
        return []
    finally:
        conn.close()
    return [dict(row) for row in rows]
