"""Cache lookups of one event-loop turn share a read transaction: fewer lock calls, and nothing a caller can see
changes (a row committed in this process is found by the next lookup; another process's row by the next turn's)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cotbridge import ConfigError
from cotbridge.cache.store import ResponseStore
from tests.test_cache import store_record


def _store_in_another_process(db: Path, i: int) -> None:
    script = (
        "import sys; from cotbridge.cache.store import ResponseStore; from tests.test_cache import store_record; "
        "s = ResponseStore(sys.argv[1]); s.put_many([store_record(int(sys.argv[2]))]); s.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(db), str(i)], check=True, cwd=Path(__file__).parent.parent)


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def _statements(store: ResponseStore) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


async def test_the_lookups_of_one_turn_share_one_transaction_ended_at_the_next_turn(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    store.put_many([store_record(1)])
    seen = _statements(store)
    assert [store.get(f"k{i}") is not None for i in range(5)] == [False, True, False, False, False]
    assert store._conn.in_transaction
    assert seen.count("BEGIN") == 1 and "COMMIT" not in seen
    await _next_turn()
    assert not store._conn.in_transaction and seen.count("COMMIT") == 1
    store.close()


async def test_a_row_another_process_commits_is_found_from_the_next_turn_on(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    assert store.get("k7") is None
    _store_in_another_process(db, 7)
    assert store.get("k7") is None  # this turn's snapshot was taken before the other process committed
    await _next_turn()
    hit = store.get("k7")
    assert hit is not None and hit.content == "c7"
    store.close()


async def test_a_store_writes_and_closes_in_the_turn_of_its_lookups(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    assert store.get("k1") is None
    store.put_many([store_record(1)])  # the shared transaction ends first: no transaction within a transaction
    assert store.get("k1") is not None
    store.flush_hits()
    assert store.get("k2") is None
    store.close()  # and ends it, so the final checkpoint empties the log
    wal = tmp_path / "c.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT hits FROM hits").fetchone() == (1,)


def test_outside_an_event_loop_each_lookup_has_its_own_transaction(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    assert store.get("k1") is None
    assert not store._conn.in_transaction
    store.close()


def test_a_loop_that_stopped_before_ending_the_transaction_leaves_no_stale_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = ResponseStore(db)

    async def look_and_stop() -> None:
        assert store.get("k3") is None
        asyncio.get_running_loop().stop()  # the turn's end never runs

    loop = asyncio.new_event_loop()
    loop.create_task(look_and_stop())
    loop.run_forever()
    loop.close()
    assert store._conn.in_transaction
    _store_in_another_process(db, 3)

    async def look_again() -> None:
        assert store.get("k3") is not None  # a lookup on another loop starts a new snapshot

    asyncio.run(look_again())
    store.close()


async def test_a_lookup_on_a_closed_store_says_so_in_a_turn_of_its_own(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    store.close()
    with pytest.raises(ConfigError, match="is closed"):
        store.get("k1")
