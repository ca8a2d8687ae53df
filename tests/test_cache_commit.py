"""The cold path's hand-off between a request and its commit: a response reaches its callers only once its row is
committed, the shared call stays joinable until then, and what another connection wrote is seen by a later lookup."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError
from cotbridge.cache import checkpoint
from cotbridge.cache import store as store_module
from cotbridge.cache.store import ResponseStore
from tests.fake_provider import FakeProvider
from tests.fault_server import FaultServer
from tests.test_cache import store_record
from tests.test_client import ASK, fake_model


def _row_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


async def _until(condition: object, what: str) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_response_waiting_for_its_commit_is_shared_not_fetched_again_and_reaches_callers_after_it(
    tmp_path: Path,
) -> None:
    """Another connection holds the write lock, so the commit waits (busy timeout): the call has returned, its
    caller must not have the answer yet, and a caller asking the same meanwhile joins it instead of asking again."""
    db = tmp_path / "c.db"
    provider = FakeProvider()
    store = ResponseStore(db)
    model = fake_model(provider, store, budget=None, price=None)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    first = asyncio.ensure_future(model.chat(ASK))
    await _until(lambda: len(provider.bodies) == 1, "the first request")
    await asyncio.sleep(0.1)  # the call returned long ago; its row waits for the lock
    second = asyncio.ensure_future(model.chat(ASK))
    impatient = asyncio.ensure_future(asyncio.wait_for(model.chat(ASK), 0.05))
    with pytest.raises(TimeoutError):
        await impatient
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done(), "an answer was handed out before its row was committed"
    assert _row_count(db) == 0
    locker.execute("COMMIT")
    answers = await asyncio.gather(first, second)
    assert [a.text for a in answers] == ["answer 1.0"] * 2 and len(provider.bodies) == 1
    assert [a.cached for a in answers] == [False, True] and model.stats.deduplicated == 1  # the impatient one left
    assert _row_count(db) == 1
    again = await model.chat(ASK)
    assert again.cached and len(provider.bodies) == 1
    locker.close()
    store.close()


async def test_a_failed_commit_reaches_every_caller_of_the_shared_call(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    provider = FakeProvider(delay_s=0.05)
    store = ResponseStore(db)
    model = fake_model(provider, store, budget=None, price=None)
    callers = [asyncio.ensure_future(model.chat(ASK)) for _ in range(3)]
    await asyncio.sleep(0)
    other = sqlite3.connect(db)
    other.execute("DROP TABLE responses")  # the commit of the shared response fails
    other.close()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert len(provider.bodies) == 1
    assert all(isinstance(r, ConfigError) and "no such table: responses" in str(r) for r in results), results
    store.close()


async def test_a_row_another_connection_committed_is_found_by_a_later_lookup(tmp_path: Path) -> None:
    """A miss is never remembered: what another process stored after it is a hit the next time."""
    db = tmp_path / "c.db"
    store, other = ResponseStore(db), ResponseStore(db)
    assert store.get("k1") is None
    other.put_many([store_record(1)])
    hit = store.get("k1")
    assert hit is not None and hit.content == "c1"
    committed = other.put_soon([store_record(2)])  # through the other store's writer thread
    assert committed is not None
    await committed
    assert store.get("k2") is not None
    store.close()
    other.close()


async def test_two_stores_writing_the_same_key_keep_one_row_and_fail_neither(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    stores = [ResponseStore(db), ResponseStore(db)]
    waits = [store.put_soon([store_record(i) for i in range(20)]) for store in stores]
    for committed in waits:
        assert committed is not None
        await committed
    assert _row_count(db) == 20
    for store in stores:
        store.close()


async def test_a_batch_that_finds_the_lock_taken_waits_for_it_off_the_event_loop(tmp_path: Path) -> None:
    """Batches are written on the loop's thread on a connection that never waits; one that finds another
    connection holding the lock goes to the writer thread, which waits for it while the loop goes on."""
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    first = store.put_soon([store_record(1)])
    assert first is not None
    await first
    assert store._group is not None and store._group._writer is None, "an unlocked file needs no writer thread"
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    waiting = store.put_soon([store_record(2), store_record(3)])
    assert waiting is not None
    ticks, started = 0, asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < 0.3:
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks >= 10, f"the event loop stalled while the lock was held ({ticks} ticks in 0.3 s)"
    assert not waiting.done() and _row_count(db) == 1 and store._group._writer is not None
    locker.execute("COMMIT")
    await asyncio.wait_for(waiting, 5)
    assert _row_count(db) == 3
    later = store.put_soon([store_record(4)])
    assert later is not None
    await later
    assert _row_count(db) == 4
    locker.close()
    store.close()


async def test_the_write_ahead_log_is_checkpointed_off_the_event_loop_and_emptied_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's connection never checkpoints (the copy and its sync would stall the loop); its checkpoint
    thread copies the log into the file after every CHECKPOINT_EVERY_ROWS rows, and closing leaves no log behind."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_ROWS", 20)
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    empty_file = db.stat().st_size
    for start in range(0, 60, 10):
        committed = store.put_soon([store_record(i) for i in range(start, start + 10)])
        assert committed is not None
        await committed
        await asyncio.sleep(0.05)  # a checkpoint running when more rows come leaves them to the next
    assert store._checkpointer is not None
    await _until(lambda: store._checkpointer is not None and store._checkpointer.runs >= 2, "two checkpoints")
    await _until(lambda: db.stat().st_size > empty_file + 60 * 50, "the rows copied into the database file")
    assert store._checkpointer.runs <= 3
    store.put_many([store_record(i) for i in range(60, 65)])  # fewer than a checkpoint's worth, left in the log
    store.close()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    assert _row_count(db) == 65


async def test_requests_awaited_one_after_another_do_not_wait_out_the_group_commits_linger(
    faults: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing else is in flight when each response arrives: its row is committed at once, not after the linger (a
    minute here; 3 ms in use, which made each call of a sequential caller 20 times as slow as with the cache off)."""
    monkeypatch.setattr(store_module, "LINGER_S", 60.0)
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        model = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        for i in range(3):
            answer = await asyncio.wait_for(model.chat([{"role": "user", "content": f"question {i}"}]), 10)
            assert not answer.cached and _row_count(db) == i + 1
        assert bridge._store is not None and bridge._store.requests_in_flight == 0
    assert faults.requests["ok"] == 3
