"""Study throughput: one study on a local llama.cpp server with 4 parallel slots, run one request at a time (as
the reference code does) and by cotbridge, then again from the warm cache.

Prints wall time, requests/s, the server's busy fraction (the share of the wall time with at least one request
in flight, from the stored request intervals) and the ratios. Targets (issue 4): cotbridge >= 3x the sequential
run; a warm-cache rerun >= 50x faster than the cold run. Two sequential runs: one like the reference code (each
prompt computed from scratch, as transformers does call by call: llama.cpp's `cache_prompt` off) and one that
keeps llama.cpp's prompt cache.

Measured here (2 cores, 8 problems): reference-like sequential 42.3 s, sequential with prompt cache 25.6 s,
cotbridge 20.3 s (2.1x and 1.3x), warm rerun 0.02 s (about 1000x). On this machine every run keeps the local
server 100% busy, so the gain is only what llama.cpp saves by reusing prompts and decoding 4 sequences per pass on
2 CPU cores; on a GPU server, where batching is nearly free, concurrency is where a 3x comes from. The warm rerun
sends no request.

    python benchmarks/study_throughput.py [--problems 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

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
            ref_wall, ref_requests = run(ref_text, ref_db)
            ref_busy = busy_fraction(ref_db, ref_wall)
            seq_wall, seq_requests = run(seq_text, seq_db)
            seq_busy = busy_fraction(seq_db, seq_wall)
            par_wall, par_requests = run(par_text, par_db)
            par_busy = busy_fraction(par_db, par_wall)
            warm_wall, _ = run(par_text, par_db)
    finally:
        server.stop()
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


if __name__ == "__main__":
    main()
