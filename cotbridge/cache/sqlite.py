"""SQLite files as cotbridge uses them: one way to open a file (and to refuse one that is not cotbridge's), one
short-write-transaction helper, and one migrations mechanism, shared by the response cache and the results DB
(which may live in the same file).

WAL with synchronous=NORMAL and a busy timeout lets several processes share one file; writes are short
transactions taken at once; no transaction is ever open across a network await (everything here is synchronous).

A file is cotbridge's when its header carries `APPLICATION_ID` (set when cotbridge creates it), or, for files of
versions before that, when it holds the tables those versions made. Any other SQLite file is refused before
anything is written to it, and a file opened read-only is never written at all.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from cotbridge.errors import ConfigError

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT_MS = 60_000
MMAP_BYTES = 1 << 30
PAGE_CACHE_KIB = 64 * 1024
MIGRATIONS_TABLE = "_cotbridge_migrations"
APPLICATION_ID = 0x436F5442  # "CoTB" in the SQLite header's application_id field
SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_MAGICS = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")  # a write-ahead log's first four bytes
SIDE_FILES = ("-wal", "-shm", "-journal")
# Tables whose rows are work worth keeping (responses, results); the others are bookkeeping.
DATA_TABLES = ("responses", "trials", "explanations")

# Tables (with some of their columns) that files of cotbridge versions before APPLICATION_ID hold: the migrations
# table (every cache file had it), and the results DB of versions before migrations. A file with every table of one
# entry is cotbridge's.
EARLIER_LAYOUTS: tuple[dict[str, frozenset[str]], ...] = (
    {MIGRATIONS_TABLE: frozenset({"name", "applied_at"})},
    {
        "studies": frozenset({"name", "config"}),
        "trials": frozenset({"study", "condition", "variant", "evaluator", "source", "problem_id", "mode"}),
        "explanations": frozenset({"study", "problem_id", "source", "kind", "cot", "final_text"}),
    },
)

# (name, function): a schema change, applied once per file. Lists are ordered; append, never edit.
Migration = tuple[str, Callable[["sqlite_utils.Database"], None]]


def is_sqlite_file(path: str | Path) -> bool:
    """Whether the file starts like a SQLite database or a write-ahead log (False for a missing file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError:
        return False
    return head == SQLITE_MAGIC or head[:4] in WAL_MAGICS


def check_file(path: str, what: str, *, must_exist: bool = False) -> None:
    """Refuses, before SQLite opens it, a path that cannot be a cotbridge file: a folder, a file that is not SQLite,
    a file in a folder that does not exist (or a missing file, with `must_exist`)."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise ConfigError(f"{what} {path!r} is a folder; pass the path of a file")
    if not file.exists():
        if must_exist:
            raise ConfigError(f"{what} {path!r} does not exist")
        parent = file.resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"{what} {path!r}: folder {str(parent)!r} does not exist; create it or pass another path")
        return
    if file.stat().st_size > 0 and not is_sqlite_file(file):
        raise ConfigError(
            f"{what} {path!r} is not a SQLite database (another kind of file); cotbridge left it untouched: "
            "pass the path of a cotbridge database or of a new file"
        )


def connect(path: str, what: str = "database", *, read_only: bool = False) -> sqlite3.Connection:
    """A connection with the cache's settings: autocommit (transactions are explicit and short), a busy timeout,
    WAL and synchronous=NORMAL on files, memory-mapped reads and a large page cache.

    A file is claimed (see `claim`) before anything is written to it. `read_only` opens it without ever writing
    (no WAL switch, no claim mark); SQLite errors come out as `database_error`'s ConfigError."""
    try:
        if read_only:
            uri = f"file:{quote(str(Path(path).expanduser().resolve()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise database_error(exc, what, path) from None
    with _closed_on_failure(conn, what, path):
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path != ":memory:":
            claim(conn, path, what, read_only=read_only)
            if not read_only:
                _enable_wal(conn)
        if not read_only:
            conn.execute("PRAGMA synchronous = NORMAL")
        # Lookups read through memory-mapped pages instead of a read() call per page, and a larger page cache keeps
        # a study's working set: a warm run is mostly random primary-key reads.
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
    return conn


@contextmanager
def _closed_on_failure(conn: sqlite3.Connection, what: str, path: str) -> Iterator[None]:
    """Closes a connection being set up when the setup fails; a SQLite failure comes out as `database_error`'s."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise database_error(exc, what, path) from None
    except BaseException:
        conn.close()
        raise


def claim(conn: sqlite3.Connection, path: str, what: str = "database", *, read_only: bool = False) -> None:
    """Accepts a file that is cotbridge's and refuses any other, writing nothing before it knows.

    cotbridge's: its header has APPLICATION_ID, or it holds the tables of an earlier version (`EARLIER_LAYOUTS`).
    A new or empty file (no schema, no ids) is taken. Files taken are marked with APPLICATION_ID unless read-only.
    """
    conn.execute("BEGIN")  # one snapshot: another process may be creating the file's tables meanwhile
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        tables = {name: _columns(conn, name) for kind, name in objects if kind == "table"}
    finally:
        conn.execute("COMMIT")
    if app_id == APPLICATION_ID:
        return
    if app_id == 0 and not objects and user_version == 0:
        if read_only:
            raise ConfigError(f"{what} {path!r} is an empty SQLite file: it holds no cotbridge data yet")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        return
    earlier = any(all(cols <= tables.get(t, frozenset()) for t, cols in layout.items()) for layout in EARLIER_LAYOUTS)
    if app_id == 0 and earlier:
        if not read_only:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        return
    found = ", ".join(sorted(tables)[:8]) or "no tables"
    owner = f"application id {app_id:#x}" if app_id else f"tables: {found}"
    raise ConfigError(
        f"{what} {path!r} is a SQLite database of another program ({owner}); cotbridge left it untouched. "
        "Pass the path of a cotbridge database or of a new file"
    )


def _columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    return frozenset(row[1] for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,)))


def database_error(exc: sqlite3.Error, what: str, path: str) -> ConfigError:
    """A SQLite failure as a ConfigError that names the file and what to do about it."""
    text = str(exc)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        hint = "cannot be written: the file or its folder is read-only; make them writable or pass another path"
    elif "malformed" in lowered or "not a database" in lowered or "encrypted" in lowered:
        hint = "is damaged or not a SQLite database; restore it from a copy (or try `sqlite3 FILE .recover`)"
    elif "unable to open" in lowered:
        hint = "cannot be opened; check the path and its permissions"
    elif "locked" in lowered or "busy" in lowered:
        hint = "is locked by another process; wait for it to finish or pass another path"
    elif "full" in lowered or "i/o" in lowered:
        hint = "could not be written to disk; check the free space and the disk"
    else:
        hint = "failed"
    return ConfigError(f"{what} {path!r} {hint} (SQLite: {text})")


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
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # (a failed COMMIT leaves it open, holding the lock)
            conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> None:
    """Applies the migrations a file has not seen yet, in order, recording each by name. One immediate transaction
    serializes two processes that open a new file at the same moment."""
    applied = _applied(conn)  # (read without a lock: an applied migration stays applied)
    if all(name in applied for name, _ in migrations):
        return  # (the common case: no sqlite-utils, and none of the 0.1 s of imports it brings, numpy's among them)
    import sqlite_utils  # here, not at the top: the cache's writer process only writes rows

    db = sqlite_utils.Database(conn)
    with write_transaction(conn):
        db[MIGRATIONS_TABLE].create(  # type: ignore[union-attr]
            {"name": str, "applied_at": float}, pk="name", if_not_exists=True
        )
        done = _applied(conn)
        for name, apply in migrations:
            if name not in done:
                apply(db)
                conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", (name, time.time()))


def _applied(conn: sqlite3.Connection) -> set[str]:
    """The names of the migrations a file has seen (none in a file without the table)."""
    try:
        return {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    except sqlite3.OperationalError:  # no such table: a new file
        return set()


def require_migrations(conn: sqlite3.Connection, migrations: list[Migration], what: str, path: str) -> None:
    """For a file opened read-only (which cannot be upgraded): refuses it unless every migration is applied."""
    done = _applied(conn)
    missing = [name for name, _ in migrations if name not in done]
    if len(missing) == len(migrations):
        raise ConfigError(f"{what} {path!r}: cotbridge never stored this kind of data in it (its tables are missing)")
    if missing:
        raise ConfigError(
            f"{what} {path!r} was written by an earlier cotbridge version and needs an upgrade, which reading it "
            "does not do: open it once with a command that writes to it (e.g. `cotbridge run STUDY --db FILE`)"
        )


def open_database(
    path: str | Path, what: str, migrations: list[Migration], *, read_only: bool = False
) -> sqlite3.Connection:
    """A cotbridge file ready for use: checked, claimed and migrated; or, `read_only`, checked and never written.
    Every failure is a ConfigError naming the file (`what` is how messages call it, e.g. "cache file")."""
    name = str(path)
    if name != ":memory:":
        check_file(name, what, must_exist=read_only)
    conn = connect(name, what, read_only=read_only)
    with _closed_on_failure(conn, what, name):
        if read_only:
            require_migrations(conn, migrations, what, name)
        else:
            migrate(conn, migrations)
    return conn


def holds_rows(path: str | Path, tables: tuple[str, ...]) -> bool:
    """Whether any of these tables of a cotbridge file has a row (a missing table has none). Read-only."""
    if os.path.getsize(path) == 0:
        return False
    try:
        conn = connect(str(path), read_only=True)
    except ConfigError:
        return True  # not a file cotbridge can read: treat it as holding data
    try:
        present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables if t in present)
    except sqlite3.DatabaseError:
        return True
    finally:
        conn.close()


def remove_database(path: str | Path) -> None:
    """Deletes a database file and its side files (write-ahead log, shared memory, journal)."""
    for suffix in ("", *SIDE_FILES):
        with suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
