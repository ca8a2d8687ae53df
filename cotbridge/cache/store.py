"""The SQLite response store: schema and migrations through sqlite-utils, the hot path on plain sqlite3.

Rules: WAL with synchronous=NORMAL and a busy timeout (`cotbridge.cache.sqlite`), so several processes can share
one file; every write is its own short transaction, committed before the caller goes on, and no transaction is
ever open across a network await (all methods here are synchronous). Only successful responses are stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from cotbridge.cache.sqlite import SIDE_FILES, Migration, database_error, open_database, write_transaction
from cotbridge.errors import ConfigError

_SELECT_BY_KEY = (
    "SELECT response, latency_s, content, reasoning, finish_reason, logprobs, prompt_tokens, completion_tokens,"
    " reasoning_tokens FROM responses WHERE key = ?"
)
WHAT = "cache file"
# Hit counts are statistics, not data: they are kept in memory and written in batches.
HIT_FLUSH_EVERY = 10_000


def _create_responses(db: sqlite_utils.Database) -> None:
    db["responses"].create(  # type: ignore[union-attr]
        {
            "key": str,
            "op": str,
            "provider": str,
            "endpoint": str,
            "model": str,
            "sample_index": int,
            "request": str,
            "response": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "reasoning_tokens": int,
            "content": str,
            "reasoning": str,
            "finish_reason": str,
            "logprobs": str,
            "latency_s": float,
            "created_at": float,
        },
        pk="key",
        not_null={"key", "op", "provider", "endpoint", "model", "request", "response"},
        defaults={"sample_index": 0},
    )
    db["responses"].create_index(["model"])  # type: ignore[union-attr]
    # Hits are counted per model, not per row: a warm run then costs one small write per model, not per hit.
    db["hits"].create(  # type: ignore[union-attr]
        {"provider": str, "model": str, "hits": int, "last_hit_at": float},
        pk=("provider", "model"),
        defaults={"hits": 0},
    )


# Ordered; each runs once per database file. Append new ones, never edit old ones.
MIGRATIONS: list[Migration] = [
    ("0001_create_responses", _create_responses),
]


class CachedResponse(NamedTuple):
    """A stored response: the raw JSON text, the first choice's fields (so a hit needs no JSON parse), the
    latency of the call that produced it, and token counts. Field order is the SELECT's column order."""

    response: str
    latency_s: float
    content: str | None
    reasoning: str | None
    finish_reason: str | None
    logprobs: str | None  # JSON, or None when none were asked for
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(slots=True, frozen=True)
class ResponseRecord:
    """One response to store, with what identifies it."""

    key: str
    op: str
    provider: str
    endpoint: str
    model: str
    sample_index: int
    request: dict[str, Any]
    response: dict[str, Any]
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    logprobs: Any = None


class ResponseStore:
    """Responses keyed by request key, in one SQLite file (or ":memory:"). `read_only`: for reading statistics
    from an existing file without writing to it (a store opened so cannot store or count hits)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self._conn = open_database(self.path, WHAT, MIGRATIONS, read_only=read_only)
        self._closed = False
        self._hits: Counter[tuple[str, str]] = Counter()
        self._pending_hits = 0

    def _failure(self, exc: sqlite3.Error) -> ConfigError:
        """What a SQLite error means here: the store was closed, or the file failed (damaged, read-only, full)."""
        if self._closed:
            return ConfigError(
                f"{WHAT} {self.path!r} is closed (its Bridge was closed): open a new Bridge to use it again"
            )
        return database_error(exc, WHAT, self.path)

    # -- hot path ---------------------------------------------------------------------------------------------

    def get(self, key: str, counted_as: tuple[str, str] = ("", "")) -> CachedResponse | None:
        """One prepared SELECT by primary key (sqlite3 keeps the statement compiled).

        A hit is counted for `counted_as` = (provider, model).
        """
        try:
            row = self._conn.execute(_SELECT_BY_KEY, (key,)).fetchone()
        except sqlite3.Error as exc:  # a closed store or a failing file; free on the hot path until raised
            raise self._failure(exc) from None
        if row is None:
            return None
        self._hits[counted_as] += 1
        self._pending_hits += 1
        if self._pending_hits >= HIT_FLUSH_EVERY:
            self.flush_hits()
        return tuple.__new__(CachedResponse, row)  # the row as is: no per-field copying on the hot path

    def put_many(self, records: Iterable[ResponseRecord]) -> None:
        """Stores responses in one short transaction; a key already stored (by another process) is kept."""
        now = time.time()
        rows = [
            (
                r.key,
                r.op,
                r.provider,
                r.endpoint,
                r.model,
                r.sample_index,
                json.dumps(r.request, ensure_ascii=False),
                json.dumps(r.response, ensure_ascii=False),
                r.prompt_tokens,
                r.completion_tokens,
                r.reasoning_tokens,
                r.content,
                r.reasoning,
                r.finish_reason,
                None if r.logprobs is None else json.dumps(r.logprobs, ensure_ascii=False),
                r.latency_s,
                now,
            )
            for r in records
        ]
        if not rows:
            return
        try:
            self._write(
                "INSERT OR IGNORE INTO responses (key, op, provider, endpoint, model, sample_index, request,"
                " response, prompt_tokens, completion_tokens, reasoning_tokens, content, reasoning, finish_reason,"
                " logprobs, latency_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with write_transaction(self._conn):
            self._conn.executemany(sql, rows)

    def flush_hits(self) -> None:
        """Writes the hit counts gathered in memory."""
        if not self._hits:
            return
        now = time.time()
        updates = [(provider, model, count, now) for (provider, model), count in self._hits.items()]
        try:
            self._write(
                "INSERT INTO hits (provider, model, hits, last_hit_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (provider, model) DO UPDATE SET hits = hits + excluded.hits,"
                " last_hit_at = excluded.last_hit_at",
                updates,
            )
        except sqlite3.Error as exc:
            raise self._failure(exc) from None
        self._hits.clear()
        self._pending_hits = 0

    def close(self) -> None:
        """Writes pending hit counts and closes the file; closing again does nothing."""
        if self._closed:
            return
        try:
            self.flush_hits()
        finally:
            self._closed = True
            self._conn.close()

    # -- reporting --------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Entries, file size and hit counts per model, for `cotbridge cache stats`."""
        self.flush_hits()
        try:
            per_model = self._per_model()
        except sqlite3.Error as exc:
            raise self._failure(exc) from None
        size = 0
        if self.path != ":memory:":
            size = sum(p.stat().st_size for p in (Path(self.path + s) for s in ("", *SIDE_FILES)) if p.exists())
        return {
            "path": self.path,
            "entries": sum(m["entries"] for m in per_model),
            "hits": sum(m["hits"] for m in per_model),
            "size_bytes": size,
            "models": per_model,
        }

    def _per_model(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": provider,
                "model": model,
                "entries": entries,
                "hits": hits or 0,
                "prompt_tokens": prompt_tokens or 0,
                "completion_tokens": completion_tokens or 0,
            }
            for provider, model, entries, hits, prompt_tokens, completion_tokens in self._conn.execute(
                "SELECT r.provider, r.model, COUNT(*), h.hits, SUM(r.prompt_tokens), SUM(r.completion_tokens)"
                " FROM responses r LEFT JOIN hits h ON h.provider = r.provider AND h.model = r.model"
                " GROUP BY r.provider, r.model ORDER BY COUNT(*) DESC"
            )
        ]
