"""Ensemble cost: cotbridge's ensemble loop versus a sequential step loop like the reference's.

Same problems, same models, one local llama.cpp server with 8 parallel slots (SmolLM2-135M, two generator
names and one evaluator). cotbridge builds each ensemble CoT (k samples per generator in one request with `n`, all
candidates of a step scored at once, each on its own tokens). The sequential loop then replays exactly the same
steps the way the reference does them: one request per sample, one candidate scored at a time, each score forcing
the whole prefix plus the candidate, and no reuse of a previous call's prompt (the reference calls transformers'
generate and forward afresh each time). Printed per ensemble CoT: wall time, requests, prompt tokens the server
processed (its own `timings.prompt_n`), and the ratios; plus the largest difference between cotbridge's candidate
scores and the candidate part of the whole-prefix scores (exactness). Target (issue 5): >= 3x faster wall time.

    python benchmarks/ensemble_cost.py [--problems 2] [--steps 8] [--candidates 3]

Measured here (2 cores): 12.5 s vs 42.8 s per ensemble CoT (3.4x), 128 vs 256 requests. The exactness line is
below 0.1 nats: the candidate part of a whole-prefix score is computed token by token, cotbridge's after a
batched prompt, and llama.cpp's quantized activations make the two differ slightly; the tokens are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cotbridge import Bridge, EnsembleOptions, build_ensemble, load_dataset  # noqa: E402
from cotbridge.client import Model  # noqa: E402
from cotbridge.cot.ensemble import EnsembleTrace  # noqa: E402
from cotbridge.providers.local import LocalServer, local_model_path  # noqa: E402


def prompt_tokens_processed(raw: dict) -> int:
    timings = raw.get("timings") or {}
    if "prompt_n" in timings:
        return int(timings["prompt_n"])
    return int((raw.get("usage") or {}).get("prompt_tokens") or 0)


async def cotbridge_run(url: str, problems: list, args: argparse.Namespace, db: str) -> tuple[list, float, int, int]:
    async with Bridge(cache=db, max_concurrency=16) as bridge:
        a = bridge.model("llamacpp/smollm2-135m", base_url=url, thinking_format="think-tags")
        b = bridge.model("llamacpp/smollm2-twin", base_url=url, thinking_format="think-tags")
        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                build_ensemble(
                    p,
                    [a, b],
                    [a],
                    EnsembleOptions(
                        candidates=args.candidates,
                        max_steps=args.steps,
                        max_sentence_tokens=args.sentence_tokens,
                        seed=1,
                        stop_on_any_close=False,
                    ),
                )
                for p in problems
            )
        )
        wall = time.perf_counter() - start
        requests = bridge.stats.requests
    with sqlite3.connect(db) as conn:
        processed = sum(
            prompt_tokens_processed(json.loads(r))
            for (r,) in conn.execute("SELECT response FROM responses WHERE op IN ('chat', 'completions')")
        )
    # Scoring is cached as its result (op 'score'), not as raw responses: these counts cover generation only.
    return results, wall, requests, processed


async def sequential_run(url: str, problems: list, traces: list[EnsembleTrace], args: argparse.Namespace):
    """The reference's loop over the very steps cotbridge took: one request at a time, whole-prefix scoring."""
    async with Bridge(cache=None, max_concurrency=1) as bridge:
        gens = [
            bridge.model("llamacpp/smollm2-135m", base_url=url, thinking_format="think-tags"),
            bridge.model("llamacpp/smollm2-twin", base_url=url, thinking_format="think-tags"),
        ]
        evaluator = gens[0]
        requests = processed = 0
        worst = 0.0
        start = time.perf_counter()
        for problem, trace in zip(problems, traces, strict=True):
            cot = ""
            for step in trace.steps:
                for i, g in enumerate(gens):
                    rendered = await g.render(problem.prompt)
                    ids = await g.tokenize(rendered + "<think>\n" + cot)
                    for j in range(args.candidates):
                        # The reference recomputes the whole prompt for every sample (no KV reuse between calls).
                        c = await g.complete(
                            ids,
                            temperature=1.0,
                            seed=1 + 1000 * step.index + 100 * i + j,
                            max_tokens=args.sentence_tokens,
                            extra_body={"cache_prompt": False},
                        )
                        processed += prompt_tokens_processed(c.raw)
                        requests += 3
                for candidate in step.candidates:
                    if not candidate.text.strip():
                        continue
                    whole = await whole_prefix_score(evaluator, problem, cot, candidate.text)
                    requests += 4  # render (cached in memory by the server-side order), tokenize x2, forced run
                    processed += whole[2]
                    tail = whole[0][-candidate.tokens :] if candidate.tokens else []
                    if tail:
                        mean_tail = sum(tail) / len(tail)
                        worst = max(worst, abs(mean_tail - candidate.scores[evaluator.name]))
                if step.chosen is not None:
                    cot += step.candidates[step.chosen].text
        wall = time.perf_counter() - start
    return wall, requests, processed, worst


async def whole_prefix_score(m: Model, problem, cot: str, text: str) -> tuple[list[float], float, int]:
    """Log-probs of prefix + candidate forced after the problem alone (the reference's perplexity input)."""
    rendered = await m.render(problem.prompt)
    provider = m.provider
    prompt_ids, cont_ids = await provider.continuation_ids(rendered, "<think>\n" + cot + text)
    grammar = "root ::= " + " ".join(f"<[{t}]>" for t in cont_ids)
    raw = await provider.completions(
        {
            "model": provider.served_model,
            "prompt": prompt_ids,
            "grammar": grammar,
            "max_tokens": len(cont_ids),
            "temperature": 0.0,
            "logprobs": 1,
            "cache_prompt": False,
        }
    )
    entries = raw["choices"][0]["logprobs"]["content"]
    return [e["logprob"] for e in entries], 0.0, prompt_tokens_processed(raw) + len(cont_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--sentence-tokens", type=int, default=40)
    args = parser.parse_args()
    server = LocalServer(local_model_path("smollm2-135m"), alias="smollm2-135m", parallel=8)
    url = server.start()
    problems = load_dataset("builtin:arithmetic", sample=args.problems, seed=5)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results, wall_c, req_c, proc_c = asyncio.run(cotbridge_run(url, problems, args, str(Path(tmp) / "e.db")))
        traces = [trace for _, trace in results]
        wall_s, req_s, proc_s, worst = asyncio.run(sequential_run(url, problems, traces, args))
    finally:
        server.stop()
    n = len(problems)
    steps = sum(len(t.steps) for t in traces)
    print(
        f"{n} ensemble CoTs, {steps} steps, 2 generators x {args.candidates} candidates, 1 evaluator; "
        "llama.cpp (SmolLM2-135M), 8 slots, 2 cores"
    )
    print(f"{'per ensemble CoT':<28}{'wall s':>10}{'requests':>10}{'prompt tok':>12}")
    print(f"{'cotbridge (concurrent)':<28}{wall_c / n:>10.2f}{req_c / n:>10.1f}{proc_c / n:>12.0f}  (generation only)")
    print(f"{'sequential, whole prefix':<28}{wall_s / n:>10.2f}{req_s / n:>10.1f}{proc_s / n:>12.0f}")
    print(f"speed-up: {wall_s / wall_c:.2f}x wall time (target >= 3x)")
    print(f"exactness: largest |candidate mean log-prob difference| = {worst:.2e}")


if __name__ == "__main__":
    main()
