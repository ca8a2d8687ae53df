"""Client overhead: 5,000 chat requests at concurrency 64 to an instant local OpenAI-compatible server.

Prints requests/s for raw aiohttp, the openai SDK's AsyncOpenAI, litellm.acompletion, and cotbridge with the
cache off, cold (every response written) and warm, each as a ratio to raw aiohttp measured in the same run, and the
client process's CPU time per request (user + system, the timed part only). Clients run interleaved, `--repeat`
rounds of each; a ratio is taken between two runs of the same round and the targets are judged on the median of those
paired ratios: on a shared virtual machine, requests/s swing by a third from one minute to the next, which makes a
best-of-N ratio say more about luck than about the client. With
`--baseline DIR` (another tree of cotbridge, e.g. `git worktree add /tmp/before HEAD~1`, or
`mkdir /tmp/before && git archive HEAD | tar -x -C /tmp/before`) the same cotbridge clients run from that tree too,
so a change is compared with the code before it in one run. Each client's process first runs 100 requests untimed
(its imports, and creating a cache file, are start-up), then freezes its start-up objects
(`gc.freeze()`, what a long-running program does after its start-up) before the timed part: otherwise every full
collection during the run rescans some 58,000 objects of the imports, which weighs on a client in proportion to how
many objects its requests leave alive for a while (the cold cache's, waiting for their commit, most).
Targets: cotbridge cache off >= 0.9x raw aiohttp; cold cache >= 0.75x; warm cache >= 5x; off and warm ahead of
litellm; against a baseline, no mode more than 10% below it.

    python benchmarks/client_overhead.py [--requests 5000] [--concurrency 64] [--repeat 20] [--baseline DIR]
        [--only raw,off,cold]   # a subset: raw, openai, litellm, off, cold, warm (warm runs after cold)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp

HERE = Path(__file__).resolve().parent
# The tree cotbridge is imported from: this checkout, or the baseline's when measuring it.
sys.path.insert(0, os.environ.get("COTBRIDGE_SOURCE", str(HERE.parent)))

from cotbridge import Bridge  # noqa: E402


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} + {i}?"}]


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with semaphore:
            await one(i)

    await asyncio.gather(*(run(i) for i in range(n)))


async def raw_aiohttp(url: str, n: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = {"model": "bench", "messages": messages(i), "temperature": 0.0}
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                assert json.loads(await resp.read())["choices"][0]["message"]["content"]

        await bounded(n, concurrency, one)


async def openai_sdk(url: str, n: int, concurrency: int) -> None:
    import httpx
    from openai import AsyncOpenAI

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, http_client=httpx.AsyncClient(limits=limits))

    async def one(i: int) -> None:
        r = await client.chat.completions.create(model="bench", messages=messages(i), temperature=0.0)  # type: ignore[arg-type]
        assert r.choices[0].message.content is not None

    await bounded(n, concurrency, one)
    await client.close()


async def litellm_acompletion(url: str, n: int, concurrency: int) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    async def one(i: int) -> None:
        r = await litellm.acompletion(
            model="openai/bench",
            api_base=url,
            api_key="unused",
            messages=messages(i),
            temperature=0.0,
            num_retries=0,
        )
        assert r.choices[0].message.content is not None

    await bounded(n, concurrency, one)


async def cotbridge_run(url: str, n: int, concurrency: int, cache: str | None) -> None:
    async with Bridge(cache=cache, max_concurrency=concurrency) as bridge:
        m = bridge.model("openai-compatible/bench", base_url=url)
        await asyncio.gather(*(m.chat(messages(i)) for i in range(n)))
        assert bridge.stats.requests + bridge.stats.cache_hits == n


CLIENTS: dict[str, Callable[[str, int, int, str | None], Awaitable[None]]] = {
    "raw aiohttp": lambda url, n, c, db: raw_aiohttp(url, n, c),
    "openai AsyncOpenAI": lambda url, n, c, db: openai_sdk(url, n, c),
    "litellm.acompletion": lambda url, n, c, db: litellm_acompletion(url, n, c),
    "cotbridge, cache off": lambda url, n, c, db: cotbridge_run(url, n, c, None),
    "cotbridge, cold cache": cotbridge_run,
    "cotbridge, warm cache": cotbridge_run,
}


SHORT_NAMES = {
    "raw": "raw aiohttp",
    "openai": "openai AsyncOpenAI",
    "litellm": "litellm.acompletion",
    "off": "cotbridge, cache off",
    "cold": "cotbridge, cold cache",
    "warm": "cotbridge, warm cache",
}


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "instant_server.py"), "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[-1])
    return proc, f"http://127.0.0.1:{port}/v1"


class Figure(NamedTuple):
    """One run of one client: requests/s (wall clock) and CPU seconds per request of the client process."""

    rate: float
    cpu_s: float


def measure(client: str, url: str, n: int, c: int, db: str | None, source: str | None = None) -> Figure | str:
    """Runs one client in a fresh process (so no client's imports or threads slow another). `source`: the cotbridge
    tree to import (default this checkout). A skip message when the client's package is missing."""
    env = {**os.environ, "COTBRIDGE_SOURCE": source} if source else None
    proc = subprocess.run(
        [sys.executable, __file__, "--one", client, "--url", url, "--requests", str(n), "--concurrency", str(c)]
        + (["--db", db] if db else []),
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        missing = [line for line in proc.stderr.splitlines() if "ModuleNotFoundError" in line]
        if missing:
            return f"skipped ({missing[-1].split(': ', 1)[-1]})"
        raise RuntimeError(f"{client} failed:\n{proc.stderr[-2000:]}")
    rate, cpu_s = proc.stdout.strip().splitlines()[-1].split()
    return Figure(float(rate), float(cpu_s))


def run_one(client: str, url: str, n: int, c: int, db: str | None) -> None:
    # Not timed: 100 requests of the client itself, on a cache file of their own. Its imports, and for cotbridge
    # creating a cache file (sqlite-utils, imported only then), are start-up, not a cost per request; the server's
    # accept path is warm for every client alike.
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(CLIENTS[client](url, 100, c, None if db is None else str(Path(tmp) / "warm-up.db")))
    # What a long-running program does after its start-up: the objects of the imports move out of the collector's
    # way, so a full collection scans only what the run made (each client alike; see the module's docstring).
    gc.collect()
    gc.freeze()
    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(CLIENTS[client](url, n, c, db))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(n / wall, cpu / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    # 20: with 5 rounds the cold cache's median moved by 0.03 from one run to the next (single rounds span a third)
    parser.add_argument("--repeat", type=int, default=20, help="rounds: runs of each client, interleaved")
    parser.add_argument("--baseline", help="another cotbridge checkout to measure in the same run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SHORT_NAMES)} (raw always runs)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    if args.one:
        run_one(args.one, args.url, n, c, args.db)
        return
    clients = chosen_clients(args.only)
    server, url = start_server()
    rounds: list[dict[str, Figure | str]] = []
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "bench.db")
                runs = [(client, client, None) for client in clients]
                if args.baseline:
                    runs += [(f"baseline{name[9:]}", name, args.baseline) for name in clients if "cotbridge" in name]
                figures: dict[str, Figure | str] = {}
                for label, client, source in runs:
                    cached = "cache" in client and "off" not in client
                    figures[label] = measure(
                        client, url, n, c, (db + (".base" if source else "")) if cached else None, source
                    )
                rounds.append(figures)
    finally:
        server.terminate()
    print_figures(rounds, n, c)


def chosen_clients(only: str | None) -> list[str]:
    """The clients to run, in the order of CLIENTS (raw aiohttp always: it is the yardstick)."""
    if not only:
        return list(CLIENTS)
    names = {name.strip() for name in only.split(",") if name.strip()}
    unknown = names - set(SHORT_NAMES)
    if unknown:
        raise SystemExit(
            f"--only: unknown client(s) {', '.join(sorted(unknown))}; choose from {', '.join(SHORT_NAMES)}"
        )
    names |= {"raw"} | ({"cold"} if "warm" in names else set())  # warm reads what cold wrote
    return [SHORT_NAMES[name] for name in SHORT_NAMES if name in names]


class Summary(NamedTuple):
    """A client over all rounds: its best requests/s and lowest CPU per request, and its ratios to raw aiohttp
    measured in the same round (paired, so a slow spell of the machine weighs on both sides of a ratio)."""

    best: Figure
    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def median_interval(self) -> tuple[float, float]:
        """A 95% confidence interval of the median ratio, free of any assumed distribution: the order statistics
        n/2 -+ 0.98 sqrt(n) (the whole range for a handful of rounds)."""
        ordered, n = sorted(self.ratios), len(self.ratios)
        reach = 0.98 * math.sqrt(n)
        low, high = max(0, math.floor(n / 2 - reach)), min(n - 1, math.ceil(n / 2 + reach) - 1)
        return ordered[low], ordered[high]


def summarize(rounds: list[dict[str, Figure | str]]) -> dict[str, Summary | str]:
    """Each client's Summary (a skip message when it never ran)."""
    out: dict[str, Summary | str] = {}
    for label in rounds[0]:
        figures = [(r[label], r["raw aiohttp"]) for r in rounds]
        ran = [(f, raw) for f, raw in figures if isinstance(f, Figure) and isinstance(raw, Figure)]
        if not ran:
            out[label] = str(figures[0][0])
            continue
        best = Figure(max(f.rate for f, _ in ran), min(f.cpu_s for f, _ in ran))
        out[label] = Summary(best, [f.rate / raw.rate for f, raw in ran])
    return out


def print_figures(rounds: list[dict[str, Figure | str]], n: int, c: int) -> None:
    """The table of figures and ratios, then each target met or missed (on the median of the paired ratios)."""
    summaries = summarize(rounds)
    base = summaries["raw aiohttp"]
    assert isinstance(base, Summary)
    print(f"{n} chat requests, concurrency {c}, instant local server, {os.cpu_count()} cores, {len(rounds)} rounds")
    print(
        f"{'client':<24}{'best req/s':>12}{'vs raw, median':>16}{'(range)':>14}{'CPU us/request':>16}{'CPU vs raw':>12}"
    )
    for name, summary in summaries.items():
        if isinstance(summary, Summary):
            spread = f"{min(summary.ratios):.2f}-{max(summary.ratios):.2f}"
            cpu_us, cpu_ratio = summary.best.cpu_s * 1e6, summary.best.cpu_s / base.best.cpu_s
            print(
                f"{name:<24}{summary.best.rate:>12,.0f}{summary.median:>15.2f}x{spread:>14}"
                f"{cpu_us:>16,.0f}{cpu_ratio:>11.2f}x"
            )
        else:
            print(f"{name:<24}{summary:>28}")
    print("targets (requests/s vs raw aiohttp in the same round, median over the rounds):")
    for label, client, factor in (
        ("cache off", "cotbridge, cache off", 0.9),
        ("cold cache", "cotbridge, cold cache", 0.75),
        ("warm cache", "cotbridge, warm cache", 5.0),
    ):
        summary = summaries.get(client)
        if isinstance(summary, Summary):
            verdict = "met" if summary.median >= factor else "MISSED"
            low, high = summary.median_interval
            print(
                f"  {label} >= {factor:g}x raw: {summary.median:.2f}x {verdict} (median's 95% CI {low:.2f}-{high:.2f})"
            )
    off, warm, litellm = (summaries.get(SHORT_NAMES[name]) for name in ("off", "warm", "litellm"))
    if isinstance(litellm, Summary) and isinstance(off, Summary) and isinstance(warm, Summary):
        print("  off and warm ahead of litellm:", "met" if min(off.median, warm.median) > litellm.median else "MISSED")
    for mode in ("cache off", "cold cache", "warm cache"):
        now, before = summaries.get(f"cotbridge, {mode}"), summaries.get(f"baseline, {mode}")
        if isinstance(now, Summary) and isinstance(before, Summary):
            change = now.median / before.median
            print(f"  {mode} within 10% of the baseline ({change:.2f}x):", "met" if change >= 0.9 else "MISSED")


if __name__ == "__main__":
    main()
