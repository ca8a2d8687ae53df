"""The SQLite cache on a real file: reruns, samples, de-duplication, crashes, two processes, secrets."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cotbridge import APIStatusError, Bridge, ConfigError
from cotbridge.cache import store as store_module
from cotbridge.cache.store import ResponseRecord, ResponseStore
from tests.fault_server import FaultServer

REPO = Path(__file__).resolve().parent.parent
CLIENT = [sys.executable, str(REPO / "tests" / "cache_client.py")]


def rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def questions(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


async def test_rerun_makes_zero_network_calls(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        first = await asyncio.gather(*(m.chat(q, max_tokens=8) for q in questions(20)))
        samples = await m.chat(questions(1)[0], temperature=1.0, n=4, seed=3)
    assert faults.total == 21  # 20 chats + one request for the 4 samples
    assert rows(db) == 24  # every sample is its own row
    assert len({s.text for s in samples}) == 4 and [s.sample_index for s in samples] == [0, 1, 2, 3]
    faults.reset_counts()
    async with Bridge(cache=db) as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        again = await asyncio.gather(*(m.chat(q, max_tokens=8) for q in questions(20)))
        samples_again = await m.chat(questions(1)[0], temperature=1.0, n=4, seed=3)
        # Asking for more samples fetches only the new ones.
        more = await m.chat(questions(1)[0], temperature=1.0, n=6, seed=3)
    assert [c.text for c in again] == [c.text for c in first]
    assert all(c.cached for c in again) and all(s.cached for s in samples_again)
    assert [s.text for s in samples_again] == [s.text for s in samples]
    assert [c.cached for c in more] == [True] * 4 + [False] * 2
    assert faults.total == 1 and bridge.stats.cache_hits == 20 + 4 + 4
    assert rows(db) == 26


async def test_raw_request_and_response_are_stored(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        c = await bridge.model("openai-compatible/ok", base_url=faults.base_url).chat(questions(1)[0], seed=1)
    with sqlite3.connect(db) as conn:
        request, response, latency = conn.execute("SELECT request, response, latency_s FROM responses").fetchone()
    assert json.loads(request)["seed"] == 1 and json.loads(response) == c.raw and latency > 0


async def test_errors_and_empty_outputs_are_not_cached(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        bad = bridge.model("openai-compatible/bad-request", base_url=faults.base_url)
        empty = bridge.model("openai-compatible/empty", base_url=faults.base_url)
        for _ in range(2):
            with pytest.raises(APIStatusError):
                await bad.chat(questions(1)[0])
            assert (await empty.chat(questions(1)[0])).text == ""
    assert faults.requests["bad-request"] == 2 and faults.requests["empty"] == 2
    assert rows(db) == 0


async def test_identical_requests_in_flight_share_one_call(faults: FaultServer, tmp_path: Path) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        m = bridge.model("openai-compatible/slow", base_url=faults.base_url)
        results = await asyncio.gather(*(m.chat(questions(1)[0]) for _ in range(10)))
    assert faults.requests["slow"] == 1
    assert len({r.text for r in results}) == 1 and bridge.stats.deduplicated == 9


async def test_memory_cache_and_no_cache(faults: FaultServer) -> None:
    async with Bridge(cache=":memory:") as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        await m.chat(questions(1)[0])
        assert (await m.chat(questions(1)[0])).cached
    async with Bridge(cache=None) as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        await m.chat(questions(1)[0])
        assert not (await m.chat(questions(1)[0])).cached
    assert faults.total == 3


async def test_api_key_never_reaches_the_cache_file(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    secret = "sk-cotbridge-test-7f3a9c1e5b"
    async with Bridge(cache=db) as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url, api_key=secret)
        await asyncio.gather(*(m.chat(q) for q in questions(5)))
        await m.chat(questions(1)[0], n=3, temperature=1.0)
        with pytest.raises(APIStatusError) as info:
            await bridge.model("openai-compatible/bad-request", base_url=faults.base_url, api_key=secret).chat(
                questions(1)[0]
            )
        # Read while the connection is open too: WAL content lives in the -wal file until a checkpoint.
        during = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert f"Bearer {secret}" in faults.auth_headers  # the key was really sent
    after = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert rows(db) == 8
    assert secret.encode() not in during and secret.encode() not in after
    assert secret not in str(info.value)


async def test_every_caller_sees_its_response_only_once_its_row_is_committed(
    faults: FaultServer, tmp_path: Path
) -> None:
    """Group commit keeps the rule: at the moment a caller's await returns, its row is readable by another
    connection (another process, or the same one after a kill -9)."""
    db = tmp_path / "c.db"
    unseen: list[int] = []
    async with Bridge(cache=db, max_concurrency=64) as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        reader = sqlite3.connect(db)

        async def ask(i: int) -> None:
            await m.chat([{"role": "user", "content": f"committed {i}"}])
            # Nothing may run between the await and this read: it is what the caller could do first.
            if (
                reader.execute("SELECT 1 FROM responses WHERE instr(request, ?)", (f'"committed {i}"',)).fetchone()
                is None
            ):
                unseen.append(i)

        await asyncio.gather(*(ask(i) for i in range(200)))
        reader.close()
    assert unseen == []
    assert rows(db) == 200


def store_record(i: int) -> ResponseRecord:
    return ResponseRecord(f"k{i}", "chat", "p", "e", "m", 0, {"q": i}, {"a": i}, 0.1, content=f"c{i}")


async def test_responses_finishing_together_share_one_transaction(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    assert store.put_soon([]) is None
    first = store.put_soon([store_record(100)])
    assert first is not None
    await first
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # the connection batches are written on
    reader = sqlite3.connect(tmp_path / "c.db")
    seen_at_return: list[bool] = []

    async def finish(i: int) -> None:
        committed = store.put_soon([store_record(i)])
        assert committed is not None
        await committed
        found = reader.execute("SELECT 1 FROM responses WHERE key = ?", (f"k{i}",)).fetchone()
        seen_at_return.append(found is not None)

    await asyncio.gather(*(finish(i) for i in range(50)))
    assert seen_at_return == [True] * 50
    assert statements.count("COMMIT") == 1, statements
    await asyncio.gather(*(finish(i) for i in range(50, 53)))  # later: a transaction of their own
    assert statements.count("COMMIT") == 2
    reader.close()
    store.close()


def _lingering_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, ResponseStore]:
    """A store whose batches linger a minute, with one request in flight (whose row could join a batch)."""
    monkeypatch.setattr(store_module, "LINGER_S", 60.0)
    db = tmp_path / "c.db"
    store = ResponseStore(db)
    store.requests_in_flight = 1
    return db, store


async def test_a_full_batch_is_written_at_once_and_a_smaller_one_waits_for_its_company(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, store = _lingering_store(tmp_path, monkeypatch)
    full = [store.put_soon([store_record(i)]) for i in range(store_module.FULL_BATCH_ROWS)]
    await asyncio.wait_for(asyncio.gather(*(f for f in full if f is not None)), 10)  # not a minute
    assert rows(db) == store_module.FULL_BATCH_ROWS
    short = store.put_soon([store_record(100)])
    assert short is not None
    await asyncio.sleep(0.3)
    assert not short.done() and rows(db) == store_module.FULL_BATCH_ROWS
    store.close()  # nothing queued is dropped
    assert short.done() and short.exception() is None
    assert rows(db) == store_module.FULL_BATCH_ROWS + 1


async def test_a_batch_goes_at_once_when_no_request_is_left_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, store = _lingering_store(tmp_path, monkeypatch)
    waiting = store.put_soon([store_record(0)])
    assert waiting is not None
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a batch went while a request that could join it was in flight"
    store.requests_in_flight = 0  # that request's row came; nothing else will
    last = store.put_soon([store_record(1)])
    assert last is not None
    await asyncio.wait_for(asyncio.gather(waiting, last), 10)  # not a minute
    assert rows(db) == 2
    alone = store.put_soon([store_record(2)])
    assert alone is not None
    await asyncio.wait_for(alone, 10)
    assert rows(db) == 3
    store.close()


async def test_a_group_commit_of_odd_size_stores_every_row_once_as_it_came(tmp_path: Path) -> None:
    # 77 rows: multi-row INSERTs of 32, 32, 8, 4 and 1; a key twice in one group keeps its first row, and a response
    # with non-ASCII text, NaN log-probs and a big integer reads back equal to what was stored.
    store = ResponseStore(tmp_path / "c.db")
    records = [store_record(i) for i in range(76)] + [store_record(5)]
    records[-1] = records[-1]._replace(content="second")
    odd = {"a": "é ✓ 𝄞", "big": 10**30, "nested": [1.5, None, True]}
    records[3] = ResponseRecord("k3", "chat", "p", "e", "m", 0, {"q": 3}, odd, 0.1, logprobs={"lp": float("nan")})
    committed = [store.put_soon([record]) for record in records]
    for future in committed:
        assert future is not None
        await future
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone() == (76, 76)
    assert conn.execute("SELECT content FROM responses WHERE key = 'k5'").fetchone() == ("c5",)
    conn.close()
    hit = store.get("k3")
    assert hit is not None and json.loads(hit.response) == odd
    assert hit.logprobs is not None and json.loads(hit.logprobs)["lp"] != json.loads(hit.logprobs)["lp"]  # NaN
    assert store.get("k75") is not None and store.get("k76") is None
    store.close()


async def test_a_failed_group_commit_reaches_every_caller(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    other = sqlite3.connect(tmp_path / "c.db")
    other.execute("DROP TABLE responses")  # the next transaction fails
    other.close()
    waiting = [store.put_soon([store_record(i)]) for i in range(1, 4)]
    for committed in waiting:
        assert committed is not None
        with pytest.raises(ConfigError, match="no such table: responses"):
            await committed
    store.close()
    with pytest.raises(ConfigError, match="is closed"):
        store.put_soon([store_record(9)])


async def test_closing_the_store_commits_what_is_queued(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "c.db")
    committed = store.put_soon([store_record(i) for i in range(3)])
    store.close()  # before the loop ran the commit
    assert committed is not None and committed.done() and committed.exception() is None
    assert rows(tmp_path / "c.db") == 3


def _writer_processes_of(db: Path) -> list[int]:
    """The pids of the cache writer processes writing `db` (whatever their parent)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"writer_process" in part for part in command) and str(db).encode() in command:
                pids.append(int(entry.name))
    return pids


def _running(pid: int) -> bool:
    """Whether the process runs (an exited one nobody reaped yet, a zombie, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_exit(pids: list[int], timeout_s: float = 10.0) -> None:
    deadline = time.time() + timeout_s
    while (alive := [pid for pid in pids if _running(pid)]) and time.time() < deadline:
        time.sleep(0.02)
    assert not alive, f"writer processes {alive} outlived their killed parent by {timeout_s} s"


@pytest.mark.slow
def test_kill_9_loses_no_finished_response(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    proc = subprocess.Popen(
        [*CLIENT, str(db), faults.base_url, "slow", "0", "200", "4"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.05)
        if db.exists():
            try:
                if rows(db) >= 40:
                    break
            except sqlite3.OperationalError:
                continue  # the table is being created
    writers = _writer_processes_of(db)
    assert writers, "the client has no cache writer process"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.stdout is not None
    seen = sum(line.startswith("seen ") for line in proc.stdout.read().splitlines())
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    served_before_kill = faults.requests["slow"]
    # The cache's writer process outlives its killed parent only to commit the batch it holds.
    _wait_for_exit(writers)
    kept = rows(db)
    assert 40 <= kept < 200
    # Responses served but not yet received, or received but not yet committed, may be lost; none a caller saw.
    assert 0 < seen <= kept <= served_before_kill

    faults.reset_counts()
    rerun = subprocess.run(
        [*CLIENT, str(db), faults.base_url, "slow", "0", "200", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    stats = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert faults.requests["slow"] == 200 - kept == stats["requests"]
    assert stats["cache_hits"] == kept
    assert rows(db) == 200


@pytest.mark.slow
def test_two_processes_share_one_cache_file(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    # Overlapping ranges: both processes write, and some keys are written by both.
    procs = [
        subprocess.Popen(
            [*CLIENT, str(db), faults.base_url, "ok", str(first), "400", "16"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first in (0, 200)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
    assert rows(db) == 600


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="anthropic/ needs the extra `hosted` (litellm)")
async def test_a_request_asked_another_way_is_not_answered_from_the_cache(
    faults: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys cover the request as the vendor gets it: one chat asked with thinking and without is two requests."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-cache-key-test")
    ask = [{"role": "user", "content": "What is 17 + 25?"}]
    no_thinking = {"visibility": "none", "thinking": {"control": "none"}}
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        thinking = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        plain = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url, capabilities=no_thinking)
        first, second, again = await thinking.chat(ask), await plain.chat(ask), await thinking.chat(ask)
    assert faults.total == 2 and "thinking" in faults.bodies[0] and "thinking" not in faults.bodies[1]
    assert first.reasoning and not second.reasoning and again.reasoning == first.reasoning


def test_a_bridge_on_an_existing_cache_skips_the_migration_library_and_its_imports(tmp_path: Path) -> None:
    # sqlite-utils (and numpy, which it imports when present) is needed only to create or upgrade a file: about a
    # third of a client's start-up on an existing cache.
    db = tmp_path / "c.db"
    code = (
        "import asyncio, sys\n"
        "from cotbridge import Bridge\n"
        "async def main():\n"
        "    async with Bridge(cache=sys.argv[1]) as bridge:\n"
        "        bridge.model('openai-compatible/m', base_url='http://127.0.0.1:9/v1')\n"
        "asyncio.run(main())\n"
        "print(sorted({'sqlite_utils', 'numpy'} & set(sys.modules)))\n"
    )
    first = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True)
    assert "sqlite_utils" in first.stdout  # a new file is created through it
    again = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "[]"
