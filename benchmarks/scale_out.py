"""Scale-out: replicas of one model, and a hosted model's batch mode against its live calls.

Replicas: 320 chat requests to a server that answers each after 50 ms (the fault server's `slow` model, in its own
process), at most 8 in flight per server (`max_concurrency`, as a GPU server takes a bounded batch): one server,
two replicas, and two replicas plus one that refuses connections (set aside after its first failures, its
requests retried on the others). Throughput should follow the live replicas; no request may fail.

Batch: 200 requests of `openai/gpt-5-mini` live (Responses API) and with `batch = true` (Batch API), both against
the imitations of OpenAI's APIs the tests use (tests/imitations, built from the vendor's reference); each mode on a
cache file of its own. Prints wall time, the jobs the cache recorded and the cost counted by the budget: a batch
costs half the live price (the price map's batch price), and the study waits for the job instead of the requests.

    python benchmarks/scale_out.py [--requests 320] [--batch-requests 200]

Needs the test extra for the imitations (pip install -e '.[hosted,test]'); the batch part is skipped without the
hosted extra.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cotbridge import Bridge  # noqa: E402
from tests.fault_server import closed_port_url  # noqa: E402

PER_SERVER = 8


@contextmanager
def fault_servers(count: int) -> Iterator[list[str]]:
    """`count` fault servers, each in a process of its own; their base URLs."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # (it imports the imitations from the `tests` package)
    command = [sys.executable, str(REPO / "tests" / "fault_server.py"), "0"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(count)]
    try:
        yield [proc.stdout.readline().strip() for proc in procs if proc.stdout is not None]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} + 25?"}]


async def replicas_rate(urls: list[str], n: int) -> float:
    async with Bridge(max_concurrency=PER_SERVER) as bridge:
        model = bridge.model("openai-compatible/slow", base_url=urls if len(urls) > 1 else urls[0])
        started = time.perf_counter()
        answers = await asyncio.gather(*(model.chat(ask(i)) for i in range(n)))
        elapsed = time.perf_counter() - started
    assert all(a.text for a in answers), "a request failed"
    return n / elapsed


def replicas(n: int) -> None:
    with fault_servers(2) as (first, second):
        cases = {
            "one server": [first],
            "two replicas": [first, second],
            "two replicas + one down": [first, second, closed_port_url()],
        }
        rates = {name: asyncio.run(replicas_rate(urls, n)) for name, urls in cases.items()}
    print(f"replicas: {n} requests of 50 ms, {PER_SERVER} in flight per server")
    for name, rate in rates.items():
        print(f"  {name:<26}{rate:8.1f} req/s {rate / rates['one server']:6.2f}x one server")


async def hosted_run(url: str, n: int, db: str, batch: bool) -> tuple[float, float]:
    """(seconds, USD counted) for n requests of one mode."""
    fields = {"batch": True, "batch_poll_s": 0.05} if batch else {}
    async with Bridge(cache=db, budget_usd=1000.0) as bridge:
        model = bridge.model("openai/gpt-5-mini", base_url=url, **fields)
        started = time.perf_counter()
        answers = await asyncio.gather(*(model.chat(ask(i), max_tokens=64) for i in range(n)))
        elapsed = time.perf_counter() - started
        assert all(a.text for a in answers) and bridge.budget is not None
        return elapsed, bridge.budget.spent_usd


def batch_jobs(db: str) -> int:
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return int(conn.execute("SELECT COUNT(*) FROM batch_jobs").fetchone()[0]) if "batch_jobs" in tables else 0


def batch(n: int) -> None:
    if importlib.util.find_spec("openai") is None:
        print("batch: skipped (openai/ needs the extra `hosted`: pip install -e '.[hosted]')")
        return
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-imitation")
    with fault_servers(1) as (url,), tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for mode in ("live", "batch"):
            db = str(Path(tmp) / f"{mode}.db")
            seconds, usd = asyncio.run(hosted_run(url, n, db, mode == "batch"))
            figures[mode] = (seconds, usd, batch_jobs(db))
    print(f"batch: {n} requests of openai/gpt-5-mini against the imitations of OpenAI's Responses and Batch APIs")
    for mode, (seconds, usd, jobs) in figures.items():
        print(f"  {mode:<6}{seconds:7.2f} s  {jobs} batch jobs  ${usd:.5f}  {usd / figures['live'][1]:.2f}x live cost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--batch-requests", type=int, default=200)
    args = parser.parse_args()
    replicas(args.requests)
    batch(args.batch_requests)


if __name__ == "__main__":
    main()
