"""Client overhead: 5,000 chat requests at concurrency 64 to an instant local OpenAI-compatible server.

Prints requests/s for raw aiohttp, the openai SDK's AsyncOpenAI, litellm.acompletion, and cotbridge with the
cache off, cold and warm, each as a ratio to raw aiohttp measured in the same run. With `--baseline DIR` (another
checkout of cotbridge, e.g. `git worktree add /tmp/before HEAD~1`) the same cotbridge clients run from that tree
too, so a change is compared with the code before it in one run.
Targets: cotbridge cache off >= 0.8x raw aiohttp; warm cache >= 5x; both ahead of litellm; against a baseline,
cache off and warm within 10% of it.

    python benchmarks/client_overhead.py [--requests 5000] [--concurrency 64] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "instant_server.py"), "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[-1])
    return proc, f"http://127.0.0.1:{port}/v1"


def measure(client: str, url: str, n: int, c: int, db: str | None, source: str | None = None) -> float | str:
    """Runs one client in a fresh process (so no client's imports or threads slow another); requests/s. `source`:
    the cotbridge tree to import (default this checkout)."""
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
    return float(proc.stdout.strip().splitlines()[-1])


def run_one(client: str, url: str, n: int, c: int, db: str | None) -> None:
    asyncio.run(raw_aiohttp(url, 100, c))  # warm the server's accept path; not timed
    start = time.perf_counter()
    asyncio.run(CLIENTS[client](url, n, c, db))
    print(n / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per client")
    parser.add_argument("--baseline", help="another cotbridge checkout to measure in the same run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    if args.one:
        run_one(args.one, args.url, n, c, args.db)
        return
    server, url = start_server()
    best: dict[str, float | str] = {}
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "bench.db")
                runs = [(client, client, None) for client in CLIENTS]
                if args.baseline:
                    runs += [(f"baseline{name[9:]}", name, args.baseline) for name in CLIENTS if "cotbridge" in name]
                for label, client, source in runs:
                    cached = "cache" in client and "off" not in client
                    result = measure(client, url, n, c, (db + (".base" if source else "")) if cached else None, source)
                    keep_best(best, label, result)
    finally:
        server.terminate()
    base = best["raw aiohttp"]
    assert isinstance(base, float)
    print(f"{n} chat requests, concurrency {c}, instant local server, {os.cpu_count()} cores, best of {args.repeat}")
    print(f"{'client':<24}{'requests/s':>12}{'vs raw aiohttp':>16}")
    for name, value in best.items():
        if isinstance(value, float):
            print(f"{name:<24}{value:>12,.0f}{value / base:>15.2f}x")
        else:
            print(f"{name:<24}{value:>28}")
    off, warm, litellm = best["cotbridge, cache off"], best["cotbridge, warm cache"], best["litellm.acompletion"]
    print("targets: cache off >= 0.8x raw:", "met" if isinstance(off, float) and off >= 0.8 * base else "MISSED")
    print("         warm cache >= 5x raw:", "met" if isinstance(warm, float) and warm >= 5 * base else "MISSED")
    if isinstance(litellm, float):
        ahead = isinstance(off, float) and isinstance(warm, float) and min(off, warm) > litellm
        print("         both ahead of litellm:", "met" if ahead else "MISSED")
    for mode in ("cache off", "warm cache"):
        now, before = best[f"cotbridge, {mode}"], best.get(f"baseline, {mode}")
        if isinstance(now, float) and isinstance(before, float):
            verdict = "met" if now >= 0.9 * before else "MISSED"
            print(f"         {mode} within 10% of the baseline ({now / before:.2f}x):", verdict)


def keep_best(best: dict[str, float | str], label: str, result: float | str) -> None:
    """The best requests/s of a client so far (a skip message only while it has no number)."""
    previous = best.get(label)
    if previous is None or isinstance(previous, str):
        best[label] = result
    elif isinstance(result, float):
        best[label] = max(previous, result)


if __name__ == "__main__":
    main()
