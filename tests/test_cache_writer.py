"""The cache's writer process: past a few dozen rows a store's batches are committed by a child process. Its callers
still see a response only once its row is committed; a child that dies loses nothing; one that waits for the lock
does not stall the event loop; its errors reach the callers as this process's would."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotbridge import ConfigError
from cotbridge.cache import store as store_module
from cotbridge.cache.store import GroupCommit, ResponseStore
from cotbridge.cache.writer_process import WriterProcess
from tests.test_cache import store_record


@pytest.fixture(autouse=True)
def _process_after_one_row(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(store_module, "WRITER_PROCESS_AFTER_ROWS", 1)
    yield


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def _group(store: ResponseStore) -> GroupCommit:
    assert store._group is not None
    return store._group


async def _store(store: ResponseStore, numbers: range) -> None:
    committed = store.put_soon([store_record(i) for i in numbers])
    assert committed is not None
    await committed


async def _ready_process(store: ResponseStore) -> WriterProcess:
    """The store's writer process once it is ready (polled: it may start, and get ready, meanwhile)."""
    for _ in range(500):
        process = _group(store)._process
        if process is not None and process.ready:
            return process
        await asyncio.sleep(0.01)
    raise AssertionError(f"the writer process did not get ready: {_group(store).writer_failure}")


async def _with_ready_process(db: Path) -> ResponseStore:
    """A store whose first row was written on the loop's thread and whose writer process is ready."""
    store = ResponseStore(db)
    await _store(store, range(1))
    await _ready_process(store)
    return store


async def test_batches_past_the_threshold_are_committed_by_the_writer_process_before_callers_see_them(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.db"
    store = await _with_ready_process(db)
    group = _group(store)
    assert group._rows_here == 1
    reader = sqlite3.connect(db)
    seen: list[bool] = []

    async def finish(i: int) -> None:
        await _store(store, range(i, i + 1))
        seen.append(reader.execute("SELECT 1 FROM responses WHERE key = ?", (f"k{i}",)).fetchone() is not None)

    await asyncio.gather(*(finish(i) for i in range(1, 201)))
    assert seen == [True] * 200
    assert group._rows_here == 1, "rows past the threshold were written on the loop's thread"
    process = group._process
    assert process is not None
    child = process._proc
    store.close()
    assert child.poll() == 0, "the writer process outlived its store, or ended badly"
    assert _rows(db) == 201
    reader.close()


async def test_lookups_that_miss_start_the_writer_process_before_any_row_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each miss is a response on its way: the process starts then, so the rows that follow all go to it."""
    monkeypatch.setattr(store_module, "WRITER_PROCESS_AFTER_ROWS", 10**9)  # only the misses can start it
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    for i in range(store_module.WRITER_PROCESS_AFTER_MISSES - 1):
        assert store.get(f"missing {i}") is None
    assert store._group is None or store._group._process is None, "a short run needs no process"
    assert store.get("one more") is None
    assert _group(store)._process is not None
    process = await _ready_process(store)
    await _store(store, range(40))
    assert _group(store)._rows_here == 0, "rows were written on the loop's thread"
    child = process._proc
    store.close()
    assert child.poll() == 0 and _rows(db) == 40
    memory = ResponseStore(":memory:")
    for i in range(2 * store_module.WRITER_PROCESS_AFTER_MISSES):
        assert memory.get(f"missing {i}") is None
    assert memory._group is None or memory._group._process is None, "a store of no file started a writer process"
    memory.close()


async def test_a_writer_process_that_dies_loses_no_row_and_batches_go_on_in_this_process(tmp_path: Path) -> None:
    """Killed while it holds a batch (it waits for the lock another connection holds): the batch is written here
    once the lock is free, later batches too, and the store says why the process ended."""
    db = tmp_path / "c.db"
    store = await _with_ready_process(db)
    group = _group(store)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    held = asyncio.ensure_future(_store(store, range(1, 11)))
    while not (group._process is not None and group._process.busy):
        await asyncio.sleep(0.01)
    os.kill(group._process._proc.pid, signal.SIGKILL)
    await asyncio.sleep(0.3)
    assert not held.done()
    locker.execute("COMMIT")
    await asyncio.wait_for(held, 10)
    await _store(store, range(11, 21))
    assert group._process is None and group.writer_failure is not None and "exited" in group.writer_failure
    assert _rows(db) == 21
    locker.close()
    store.close()


async def test_the_event_loop_runs_on_while_the_writer_process_waits_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = await _with_ready_process(db)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    waiting = asyncio.ensure_future(_store(store, range(1, 3)))
    ticks, started = 0, asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < 0.3:
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks >= 10, f"the event loop stalled while the lock was held ({ticks} ticks in 0.3 s)"
    assert not waiting.done() and _rows(db) == 1
    locker.execute("COMMIT")
    await asyncio.wait_for(waiting, 10)
    assert _rows(db) == 3 and _group(store).writer_failure is None
    locker.close()
    store.close()


async def test_a_commit_that_fails_in_the_writer_process_reaches_the_callers_as_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = await _with_ready_process(db)
    other = sqlite3.connect(db)
    other.execute("DROP TABLE responses")
    other.close()
    with pytest.raises(ConfigError, match=r"cache file .*c\.db.* failed \(SQLite: no such table: responses\)"):
        await _store(store, range(1, 3))
    assert _group(store).writer_failure is None, "a failed commit is the file's failure, not the process's"
    store.close()


def test_a_store_used_from_a_second_event_loop_ends_the_first_loops_process_and_stores_everything(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.db"
    store = asyncio.run(_with_ready_process(db))
    first = _group(store)._process
    assert first is not None
    asyncio.run(_store(store, range(1, 30)))
    assert first._proc.poll() is not None, "the first loop's writer process was left running"
    store.close()
    assert _rows(db) == 30


async def test_a_store_closed_while_its_writer_process_starts_stops_it_at_once(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    await _store(store, range(1))  # written here; past the threshold (1 row), the writer process starts
    process = _group(store)._process
    assert process is not None and not process.ready  # (a Python takes tens of ms to start)
    store.close()
    assert process._proc.returncode == -signal.SIGKILL, "a writer process still starting was waited for"
    assert _rows(db) == 1


async def test_a_writer_process_that_cannot_start_leaves_the_writes_here_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing = shutil.which("false")
    if failing is None:
        pytest.skip("no `false` command to stand in for a Python that cannot start the writer")
    monkeypatch.setattr(sys, "executable", failing)
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    group = None
    for i in range(100):
        await _store(store, range(i, i + 1))
        group = _group(store)
        if group.writer_failure is not None:
            break
        await asyncio.sleep(0.02)
    assert group is not None and group.writer_failure is not None, "the failed start went unnoticed"
    assert "exited with code 1" in group.writer_failure
    assert any("cache writer process" in r.getMessage() and "ended" in r.getMessage() for r in caplog.records)
    await _store(store, range(1000, 1010))
    assert group._process is None and _rows(db) == i + 11
    store.close()


async def test_the_writer_process_runs_this_copy_of_cotbridge_whatever_the_working_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "cotbridge"  # a package of the same name where the child would look first with `-m`
    (decoy / "cache").mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy cotbridge was imported')\n")
    (tmp_path / "struct.py").write_text("raise ImportError('a module of the working directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    store = await _with_ready_process(tmp_path / "c.db")
    await _store(store, range(1, 20))
    assert _group(store).writer_failure is None
    store.close()
    assert _rows(tmp_path / "c.db") == 20
