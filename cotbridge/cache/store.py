"""The SQLite response store: schema and migrations through sqlite-utils, the hot path on plain sqlite3.

Rules: WAL with synchronous=NORMAL and a busy timeout (`cotbridge.cache.sqlite`), so several processes can share
one file; every write is a short transaction, committed before the caller goes on, and no transaction is ever open
across a network await (the transactions themselves are synchronous). Only successful responses are stored.

Group commit (`put_soon`): a batch gathers the responses that finish within `LINGER_S` of its first (it goes at once
when it fills one multi-row INSERT, or when no other request is in flight: `requests_in_flight`), is written in one
transaction, and each caller's future resolves only after that transaction committed. Where it is written:
- by the store's writer process (`cotbridge.cache.writer_process`), one batch at a time, which does SQLite's work
  on another core without the GIL; if it ends early, its batch and all later ones are written here again (INSERT OR
  IGNORE makes a batch it had stored harmless to write twice). It starts at the store's
  `WRITER_PROCESS_AFTER_MISSES`-th lookup that missed (responses to store are then on their way, and it is ready
  before most of them arrive), or after `WRITER_PROCESS_AFTER_ROWS` rows written here;
- on the event loop's thread, on the store's connection (made not to wait for the lock while it commits), until
  then and while the process starts (and always for ":memory:" and read-only stores);
- when another connection holds the lock, the loop's batch goes to a writer thread whose connection waits for it,
  so the loop never stalls on a lock (the writer process waits for it itself).
Measured on 2 cores against an instant local server: a transaction per response cost more than the HTTP round trip
(about 130 us against 90 us); a writer thread for every batch cost more than the writing itself (it takes the GIL
back several times per batch, each time after the loop gives it up); batches on the loop's thread cost it some
14 us of CPU per row. With the writer process the cold client ran at 0.71-0.83x raw aiohttp against 0.65-0.74x
with every batch on the loop's thread (medians of 16-20 paired rounds). The rows of a batch go in multi-row INSERTs
(`cotbridge.cache.row_writes`). Lookups run on the same connection as the loop's writes, so its page cache
survives them, and the lookups of one turn of the loop share a read transaction (`cotbridge.cache.turn_reads`); the
write-ahead log is checkpointed off the loop (`cotbridge.cache.checkpoint`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from asyncio import _get_running_loop  # the running loop or None: no exception to catch outside one
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic_core import to_json

from cotbridge.cache.checkpoint import Checkpointer
from cotbridge.cache.row_writes import (
    INSERT,
    ROWS_PER_INSERT,
    Row,
    commit_rows,
    commit_rows_without_waiting,
    is_busy,
)
from cotbridge.cache.sqlite import (
    SIDE_FILES,
    Migration,
    connect,
    database_error,
    open_database,
    write_transaction,
)
from cotbridge.cache.turn_reads import TurnReads, end_shared_reads
from cotbridge.cache.writer_process import WriterGone, WriterProcess
from cotbridge.errors import ConfigError

if TYPE_CHECKING:
    import sqlite_utils

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


class ResponseRecord(NamedTuple):
    """One response to store, with what identifies it. `request`, `response`: dicts, or their JSON text already
    encoded. A tuple in the INSERT's column order (`cotbridge.cache.row_writes`): a record whose texts are encoded
    already becomes its row with no per-field copying."""

    key: str
    op: str
    provider: str
    endpoint: str
    model: str
    sample_index: int
    request: dict[str, Any] | str
    response: dict[str, Any] | str
    latency_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    logprobs: Any = None


# Made once: json.dumps with options builds a new encoder on every call.
_stdlib_json = json.JSONEncoder(ensure_ascii=False).encode


def json_text(value: Any) -> str:
    """JSON text of a response: pydantic-core's encoder (in Rust, about 4x faster than the standard library's on a
    chat response, and compact); the standard library's for what it refuses (a lone surrogate, an unknown type), so
    what was stored before is stored still. Only the text's meaning matters here: keys are made elsewhere."""
    try:
        return to_json(value).decode()
    except ValueError:
        return _stdlib_json(value)


def _rows(records: Iterable[ResponseRecord]) -> list[Row]:
    """The INSERT's parameters of each record (its fields, then the time stored): request, response and log-probs as
    JSON text."""
    now = time.time()
    return [
        (*r, now) if type(r.request) is str and type(r.response) is str and r.logprobs is None else _encoded(r, now)
        for r in records
    ]


def _encoded(r: ResponseRecord, now: float) -> Row:
    request = r.request if isinstance(r.request, str) else json_text(r.request)
    response = r.response if isinstance(r.response, str) else json_text(r.response)
    logprobs = None if r.logprobs is None else json_text(r.logprobs)
    return (*r._replace(request=request, response=response, logprobs=logprobs), now)


# When a store starts its writer process (which takes some 30 ms to be ready; batches are written here meanwhile):
# at its 16th lookup that missed, so that a short run never needs one and a long one has it ready when its first
# responses arrive. Started once 64 rows were written instead, it let a cold run against an instant server write
# some 400 rows on the loop's thread, at about four times the process's cost per row: the cold client ran at 0.74-0.76x
# raw aiohttp against 0.76-0.78x now (CPU 116-118 against 112-115 us per request; medians of 40 paired rounds). The
# count of rows serves a store whose process ended with its event loop (a Bridge used by several `asyncio.run`).
WRITER_PROCESS_AFTER_MISSES = 16
WRITER_PROCESS_AFTER_ROWS = 64
log = logging.getLogger("cotbridge")

# How long a batch gathers rows before it is written: long enough that a busy cache writes dozens of rows per
# transaction, short beside any model's answer. A batch goes at once when no other request is in flight (nothing
# could join it), or when it fills one INSERT: waiting longer would save little, and its callers hold their places
# meanwhile (with a caller's own bound on requests in flight, as many as the bound against an instant server: 0.58x
# raw aiohttp against 0.64x with this rule, medians of 8 paired rounds).
LINGER_S = 0.003
FULL_BATCH_ROWS = ROWS_PER_INSERT


class GroupCommit:
    """The writes of one store: rows queued from the event loop, committed in batches (see the module's docstring).
    `path` None: everything on `conn` in the loop, for ":memory:" (which another connection cannot see) and a
    read-only store (whose writes fail).

    The futures of a batch's rows resolve on the loop once it committed, or raise `failure(error)` if it did not."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str | None,
        failure: Callable[[sqlite3.Error], Exception],
        checkpointer: Checkpointer | None = None,
    ):
        self._conn = conn
        self._path = path
        self._failure = failure
        self._checkpointer = checkpointer
        self._writer: ThreadPoolExecutor | None = None  # made when a batch first finds the lock taken
        self._writer_conn: sqlite3.Connection | None = None
        self._queued: list[Row] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None  # the loop a hand-over is scheduled on
        self._linger: asyncio.TimerHandle | None = None  # that hand-over, while it waits for LINGER_S
        self._writing_on: asyncio.AbstractEventLoop | None = None  # the loop of the batch in the thread or process
        self._rows_here = 0  # rows committed on the loop's thread
        self._process: WriterProcess | None = None  # see `start_process`
        self._taking_back = False  # while a process is ended here: its batch's outcome must not hand over the next
        self.writer_failure: str | None = None  # why the writer process ended early (then batches stay here)

    def queue(self, rows: list[Row], more_coming: bool) -> asyncio.Future[None]:
        """Queues rows for the next batch. `more_coming`: whether requests whose rows may join it are in flight;
        without any, the batch goes at the end of this turn instead of lingering."""
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        self._queued.extend(rows)
        self._waiters.append(committed)
        if self._scheduled_on is not loop:  # (also when a loop that ended left its queue behind)
            self._scheduled_on = loop
            if more_coming:
                self._linger = loop.call_later(LINGER_S, self._hand_over)
            else:
                loop.call_soon(self._hand_over)
        elif self._linger is not None and (not more_coming or len(self._queued) >= FULL_BATCH_ROWS):
            self._linger.cancel()
            self._linger = None
            loop.call_soon(self._hand_over)  # (after this turn: its other callers' rows join the batch)
        return committed

    def _hand_over(self) -> None:
        self._scheduled_on = None
        if self._linger is not None:  # (handed over before its time: by the batch before it, or when full)
            self._linger.cancel()
            self._linger = None
        loop = asyncio.get_running_loop()
        if self._writing_on is loop or not self._queued:
            return  # the batch being written hands over the next when it is done (one at a time off the loop)
        # (Before the queue is taken: ending a process of another loop may queue its batch here again.)
        process = None if self._path is None else self._process_on(loop)
        rows, waiters = self._queued, self._waiters
        self._queued, self._waiters = [], []
        if process is None:
            end_shared_reads()  # (it writes on `conn` here, where the lookups may hold a read transaction)
        if self._path is None:
            self._resolve(waiters, commit_rows(self._conn, rows))
            return
        if process is not None:
            self._writing_on = loop
            process.send(rows, lambda error: self._written(rows, waiters, error))
            return
        error = commit_rows_without_waiting(self._conn, rows)
        if not is_busy(error):
            self._resolve(waiters, error)
            if error is None:
                self._wrote_here(len(rows), loop)
            return
        self._writing_on = loop  # another connection holds the lock: wait for it off the loop
        writer, conn = self._writer_thread()
        job = loop.run_in_executor(writer, commit_rows, conn, rows)
        job.add_done_callback(lambda job: self._written(rows, waiters, job.exception() or job.result()))

    def _wrote_here(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        """Counts rows committed on the loop's thread; past WRITER_PROCESS_AFTER_ROWS, starts the writer process if
        none runs."""
        if self._checkpointer is not None:
            self._checkpointer.written(count)
        self._rows_here += count
        if self._rows_here >= WRITER_PROCESS_AFTER_ROWS:
            self.start_process(loop)

    def start_process(self, loop: asyncio.AbstractEventLoop) -> None:
        """Starts the writer process for `loop`, unless one runs, one ended early, or the store has no file of its own
        (batches are written here until it is ready)."""
        if self._process is not None or self.writer_failure is not None or self._path is None:
            return
        try:
            self._process = WriterProcess(self._path, loop)
        except OSError as exc:
            self._note_writer_failure(f"it could not start ({exc})")

    def _process_on(self, loop: asyncio.AbstractEventLoop) -> WriterProcess | None:
        """The writer process when it is ready to write for this loop. One that ended is dropped (and said so); one
        started on another loop (whose replies that loop would read) is ended."""
        process = self._process
        if process is None:
            return None
        if process.failure is not None:
            self._process = None
            self._note_writer_failure(process.failure)
            return None
        if process.loop is not loop:
            self._end_process()
            return None
        return process if process.ready else None

    def _note_writer_failure(self, why: str) -> None:
        self.writer_failure = why
        log.warning("cache writer process for %s ended (%s): batches are written in this process", self._path, why)

    def _written(self, rows: list[Row], waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
        """A batch written off the loop (by the writer process or thread) is done: its callers learn the outcome and
        the next batch goes; one the process could not answer for is queued here again."""
        self._writing_on = None
        if isinstance(error, WriterGone):  # written here instead; INSERT OR IGNORE keeps one of any row it stored
            self._queued[:0] = rows
            self._waiters[:0] = waiters
        else:
            self._resolve(waiters, error)
        if not self._taking_back:
            self._hand_over()

    def _end_process(self) -> None:
        """Ends the writer process after the batch it holds (resolved, or queued here again, by its outcome)."""
        if self._process is None:
            return
        self._taking_back = True
        try:
            self._process.close()
        finally:
            self._taking_back = False
            self._process = None
            self._writing_on = None

    def _writer_thread(self) -> tuple[ThreadPoolExecutor, sqlite3.Connection]:
        """The writer thread and its connection (which waits for the lock), made the first time they are needed."""
        if self._writer is None or self._writer_conn is None:
            assert self._path is not None
            self._writer_conn = connect(self._path, WHAT)  # used by the writer thread only, from here on
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cotbridge-cache-writer")
        return self._writer, self._writer_conn

    def _resolve(self, waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
        for waiter in waiters:
            if waiter.done():  # a caller cancelled meanwhile; its response is stored all the same
                continue
            try:
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(self._failure(error) if isinstance(error, sqlite3.Error) else error)
            except RuntimeError:  # its event loop was closed meanwhile: nobody is left to tell
                continue

    def drain(self) -> None:
        """Waits for the batch in the writer process or thread and commits what is still queued, here and now (for
        closing)."""
        self._end_process()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._queued:
            rows, waiters = self._queued, self._waiters
            self._queued, self._waiters = [], []
            end_shared_reads()
            self._resolve(waiters, commit_rows(self._conn, rows))

    def close(self) -> None:
        self.drain()
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None


class ResponseStore:
    """Responses keyed by request key, in one SQLite file (or ":memory:"). `read_only`: for reading statistics
    from an existing file without writing to it (a store opened so cannot store or count hits)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self._conn = open_database(self.path, WHAT, MIGRATIONS, read_only=read_only)
        self._lookup = self._conn.cursor()  # one cursor for every lookup: `execute` on the connection makes one each
        self._reads = TurnReads(self._conn)
        self._read_only = read_only
        self._closed = False
        self._hits: Counter[tuple[str, str]] = Counter()
        self._pending_hits = 0
        self._misses = 0
        # Requests sent whose responses will be stored here, counted by their callers: a batch with none left in
        # flight has nothing to wait for (a caller awaiting one request after another would wait out every linger).
        self.requests_in_flight = 0
        self._group: GroupCommit | None = None  # made on the first `put_soon`, or when writes are coming
        # A file written here is checkpointed off the loop's thread (see `cotbridge.cache.checkpoint`).
        self._checkpointer: Checkpointer | None = None
        self._writable_file = not read_only and self.path not in ("", ":memory:")
        if self._writable_file:
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = Checkpointer(self.path, WHAT)

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
            loop = _get_running_loop()
            if loop is not self._reads.loop:  # the first lookup of this turn (see `cotbridge.cache.turn_reads`)
                self._reads.begin(loop)
            row = self._lookup.execute(_SELECT_BY_KEY, (key,)).fetchone()
        except sqlite3.Error as exc:  # a closed store or a failing file; free on the hot path until raised
            raise self._failure(exc) from None
        if row is None:
            self._misses += 1
            if self._misses == WRITER_PROCESS_AFTER_MISSES and loop is not None:
                self._group_commit().start_process(loop)
            return None
        self._hits[counted_as] += 1
        self._pending_hits += 1
        if self._pending_hits >= HIT_FLUSH_EVERY:
            self.flush_hits()
        return tuple.__new__(CachedResponse, row)  # the row as is: no per-field copying on the hot path

    def put_many(self, records: Iterable[ResponseRecord]) -> None:
        """Stores responses in one short transaction; a key already stored (by another process) is kept."""
        rows = _rows(records)
        if not rows:
            return
        try:
            self._write(INSERT, rows)
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def put_soon(self, records: Iterable[ResponseRecord]) -> asyncio.Future[None] | None:
        """Queues responses for the group commit (see the module's docstring).

        Returns a future that resolves when the transaction holding them has committed (or raises its error, a
        ConfigError): await it before handing the responses to anyone. None when there was nothing to store."""
        rows = _rows(records)
        if not rows:
            return None
        if self._closed:
            raise self._failure(sqlite3.ProgrammingError("Cannot operate on a closed database."))
        return self._group_commit().queue(rows, self.requests_in_flight > 0)

    def _group_commit(self) -> GroupCommit:
        if self._group is None:
            # ":memory:" (which another connection cannot see) and a read-only store (whose writes fail) commit on
            # this connection only; a file also in the group's writer process or thread.
            path = self.path if self._writable_file else None
            self._group = GroupCommit(self._conn, path, self._failure, self._checkpointer)
        return self._group

    def _write(self, sql: str, rows: list[Row]) -> None:
        end_shared_reads()  # this store's (it writes on their connection) and the thread's others (they see the rows)
        with write_transaction(self._conn):
            self._conn.executemany(sql, rows)
        if self._checkpointer is not None:
            self._checkpointer.written(len(rows))

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
            self._reads.end()  # (a final checkpoint must not wait for it)
            if self._group is not None:
                self._group.close()  # nothing queued is dropped
            self.flush_hits()
            if self._checkpointer is not None:
                self._checkpointer.close()
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
