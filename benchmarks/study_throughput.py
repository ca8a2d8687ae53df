"""Study throughput: one study on a local llama.cpp server with 4 parallel slots, run one request at a time (as
the reference code does) and by cotbridge, then again from the warm cache.

Prints wall time, requests/s, the server's busy fraction (the share of the wall time with at least one request
in flight, from the stored request intervals) and the ratios. Targets (issue 4): cotbridge >= 3x the sequential
run; a warm-cache rerun >= 50x faster than the cold run. Two sequential runs: one like the reference code (each
prompt computed from scratch, as transformers does call by call: llama.cpp's `cache_prompt` off) and one that
keeps llama.cpp's prompt cache.

Measured here (2 cores, 8 problems): reference-like sequential 39.9 s, sequential with prompt cache 25.0 s,
cotbridge 20.4 s (1.96x and 1.23x), warm rerun 0.02 s (about 990x). The server's own gain from filling its 4
slots, measured apart on raw HTTP, is 1.35x (1.81x with 8 slots, none with 1 thread): on 2 CPU cores a decode
step costs nearly as much for 4 sequences as for 1, so concurrency can give at most 1.35x here, and cotbridge
reaches 1.23x of it; the rest of its lead over the reference-like run is prompt reuse. The 3x target needs a
server where batching is nearly free (a GPU). The warm rerun sends no request.

The server's ceiling (issue 13: a study's throughput >= 0.9x of it): the study's own generation requests (chat and
text completions, read back from its cache: the same bodies, the same token work), sent again straight over aiohttp
with no phases and no dependencies between them, at 4, 8 and 16 in flight; the best of those is the ceiling in
requests/s, and the ratio is the study's generation requests/s over it. Prompt-cache state differs between the
two (the replay comes second, in the study's order), so the ratio can pass 1. Measured here (2 cores, machine
otherwise idle, 4 problems, `--skip-sequential`): the study 1.92 generation req/s (56 of its 112 requests, 29.1 s),
the ceiling 2.08 req/s (best at 16 in flight), ratio 0.92. Under load from other processes the ratio is not
meaningful (one run at load ~4 gave 0.12 at 8 problems; the replay comes after the study and saw less contention).

    python benchmarks/study_throughput.py [--problems 8] [--skip-sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cotbridge.providers.local import LocalServer, local_model_path  # noqa: E402
from cotbridge.study import parse_study, run_study  # noqa: E402

STUDY = """
[study]
name = "throughput"
dataset = "builtin:arithmetic"
sample = {problems}
seed = 1
conditions = ["empty", "default", "sampled", "transfer"]
answer_removal = "both"
filter_model = "rule"

[study.decoding]
cot_max_tokens = 64
answer_max_tokens = 16
answer_prefix = "Answer:"

[models.a]
model = "llamacpp/smollm2-135m"
base_url = "{url}"
thinking_format = "think-tags"
concurrency = {concurrency}
extra_body = {extra}

[models.b]
model = "llamacpp/smollm2-twin"
base_url = "{url}"
thinking_format = "think-tags"
concurrency = {concurrency}
extra_body = {extra}
"""
# The reference code runs every prompt from scratch (transformers, no KV reuse between calls).
NO_PROMPT_REUSE = "{ cache_prompt = false }"


def busy_fraction(db: Path, wall: float) -> float:
    """Union of the stored requests' [start, end] intervals over the wall time (client-side view)."""
    with sqlite3.connect(db) as conn:
        spans = sorted(
            (end - latency, end) for end, latency in conn.execute("SELECT created_at, latency_s FROM responses")
        )
    busy, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        busy += current_end - current_start
    return min(1.0, busy / wall) if wall else 0.0


async def server_ceiling(url: str, requests: int = 8, tokens: int = 64) -> float:
    """The same fixed-length generations one at a time, then 4 at a time, straight over aiohttp (no cotbridge):
    how much faster the server itself gets from filling its 4 slots: the most concurrency alone can give."""
    import aiohttp

    def body(i: int) -> dict[str, object]:
        ask = [{"role": "user", "content": f"Tell a short story about the number {i}."}]
        return {
            "model": "smollm2-135m",
            "messages": ask,
            "max_tokens": tokens,
            "ignore_eos": True,
            "cache_prompt": False,
        }

    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            async with session.post(f"{url}/chat/completions", json=body(i)) as resp:
                resp.raise_for_status()
                await resp.read()

        start = time.perf_counter()
        for i in range(requests):
            await one(i)
        one_at_a_time = time.perf_counter() - start
        start = time.perf_counter()
        for batch in range(0, requests, 4):
            await asyncio.gather(*(one(i) for i in range(batch, min(batch + 4, requests))))
        four_at_a_time = time.perf_counter() - start
    return one_at_a_time / four_at_a_time


# What the stored ops are sent to, relative to the /v1 URL: the generation requests that decide a server's load.
REPLAYED = {"chat": "/chat/completions", "completions": "/completions"}


def generation_requests(db: Path) -> list[tuple[str, bytes]]:
    """The study's chat and completion requests as it sent them (path, JSON body), in the order they finished."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT op, request FROM responses ORDER BY created_at").fetchall()
    return [(REPLAYED[op], request.encode()) for op, request in rows if op in REPLAYED]


async def _send_all(session: Any, url: str, requests: list[tuple[str, bytes]], concurrency: int) -> None:
    """Sends every request, `concurrency` at a time."""
    pending = iter(requests)
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        for path, body in pending:
            async with session.post(f"{url}{path}", data=body, headers=headers) as resp:
                resp.raise_for_status()
                await resp.read()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def replay_ceiling(url: str, requests: list[tuple[str, bytes]]) -> tuple[float, int]:
    """The best requests/s of the study's generation requests replayed over raw aiohttp at 4, 8 and 16 in flight,
    and the concurrency that gave it."""
    import aiohttp

    best = (0.0, 0)
    for concurrency in (4, 8, 16):
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            start = time.perf_counter()
            await _send_all(session, url, requests, concurrency)
            rate = len(requests) / (time.perf_counter() - start)
        best = max(best, (rate, concurrency))
    return best


def run(text: str, db: Path) -> tuple[float, int]:
    start = time.perf_counter()
    asyncio.run(run_study(parse_study(text), db))
    wall = time.perf_counter() - start
    with sqlite3.connect(db) as conn:
        requests = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    return wall, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--skip-sequential", action="store_true", help="only the concurrent study and the ceiling")
    args = parser.parse_args()
    server = LocalServer(local_model_path("smollm2-135m"), alias="smollm2-135m", parallel=4)
    url = server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ref_db, seq_db, par_db = (Path(tmp) / f"{n}.db" for n in ("reference", "sequential", "cotbridge"))
            study = STUDY.replace("{problems}", str(args.problems)).replace("{url}", url)
            ref_text = study.replace("{concurrency}", "1").replace("{extra}", NO_PROMPT_REUSE)
            seq_text = study.replace("{concurrency}", "1").replace("{extra}", "{}")
            par_text = study.replace("{concurrency}", "16").replace("{extra}", "{}")
            par_wall, par_requests = run(par_text, par_db)
            par_busy = busy_fraction(par_db, par_wall)
            generations = generation_requests(par_db)
            ceiling_rate, ceiling_concurrency = asyncio.run(replay_ceiling(url, generations))
            if not args.skip_sequential:
                ref_wall, ref_requests = run(ref_text, ref_db)
                ref_busy = busy_fraction(ref_db, ref_wall)
                seq_wall, seq_requests = run(seq_text, seq_db)
                seq_busy = busy_fraction(seq_db, seq_wall)
            warm_wall, _ = run(par_text, par_db)
        slot_gain = asyncio.run(server_ceiling(url))
    finally:
        server.stop()
    study_rate = len(generations) / par_wall
    print(
        f"study: {study_rate:.2f} generation req/s ({len(generations)} chat/completion requests of {par_requests}, "
        f"{par_wall:.1f} s); the server's ceiling (the same requests, raw aiohttp, best at {ceiling_concurrency} in "
        f"flight): {ceiling_rate:.2f} req/s; ratio {study_rate / ceiling_rate:.2f} (target >= 0.9)"
    )
    if args.skip_sequential:
        print(f"cotbridge, warm cache: {warm_wall:.2f} s; warm vs cold: {par_wall / warm_wall:.0f}x")
        return
    print(f"study: {args.problems} problems, 2 models, 4 conditions x 2 variants; llama.cpp SmolLM2-135M, 4 slots")
    print(f"{'run':<26}{'wall s':>9}{'requests':>10}{'req/s':>9}{'busy':>7}")
    for name, wall, requests, busy in (
        ("reference-like sequential", ref_wall, ref_requests, ref_busy),
        ("sequential (1 in flight)", seq_wall, seq_requests, seq_busy),
        ("cotbridge (concurrent)", par_wall, par_requests, par_busy),
    ):
        print(f"{name:<26}{wall:>9.2f}{requests:>10}{requests / wall:>9.1f}{busy:>7.0%}")
    print(f"{'cotbridge, warm cache':<26}{warm_wall:>9.2f}{0:>10}")
    print(f"cotbridge vs reference-like sequential (no prompt reuse): {ref_wall / par_wall:.2f}x (target >= 3x)")
    print(f"cotbridge vs sequential with llama.cpp's prompt cache: {seq_wall / par_wall:.2f}x")
    print(f"warm vs cold: {par_wall / warm_wall:.0f}x (target >= 50x)")
    print(
        f"the server's own gain from 4 slots (raw HTTP, 64-token generations, 4 at once vs 1 at a time): "
        f"{slot_gain:.2f}x: the most that concurrency alone can give against this server"
    )


if __name__ == "__main__":
    main()
