"""Scale: a synthetic study of 10k, 100k and 1M planned trials against the instant server, and `cotbridge report`
on a results DB of as many trials; time and peak RSS per size, each size measured in its own process.

The study's shape: condition `empty` only, EVALUATORS [models] entries (distinct model ids on one instant server,
so their requests are distinct: nothing is shared in flight or served from the cache), problems = size /
EVALUATORS. Every trial is one chat request, one cache row and one trial row. The report's DB: rows written
straight through `ResultsDB` (no study run): EVALUATORS evaluators x problems x conditions `empty` and `default`
(answers drawn from a few values, some unparseable, some failed, some truncated), with the default condition's
greedy CoTs (size / 2 explanation rows) and a price per model, then `cotbridge report DB` (table) and
`--format json`, each in a fresh process (imports included).

    python benchmarks/scale.py [--skip-1m] [--evaluators 10] [--only study|report]

Measured here (2 cores, quiet machine, 10 evaluators, endpoint bound 64; phases side by side):

    trials    study s  trials/s  peak RSS MB | report (table) s  peak RSS MB | report --format json s  peak RSS MB
    10,000        5.7      1758           82 |              1.4          111 |                    1.4          111
    100,000      57.3      1745           99 |              2.8          183 |                    2.5          183
    1,000,000   633.2      1579          181 |             17.8          489 |                   18.9          489

The study's RSS grows by about 100 MB from 10k to 1M: the problem list itself (100,000 Problem objects at 1M,
the plan's input, and the study's record of which of them are ready for their trials); the jobs in flight stay at
2 x 64 per model. (Before the phases ran side by side: 4.4 / 54.2 / 674.6 s and 84 / 106 / 188 MB.)
The report's RSS follows the trials it holds as answers (one small row object per trial, the problem ids and
answers shared); its time is one pass over narrow columns plus numpy over evaluator pairs and 2,000 bootstrap
resamples drawn in chunks. Before (measured at 100k while the machine was loaded): 36 s wall (7 s CPU) and
481 MB, most of it judging evaluator pairs one problem at a time in Python and the whole [2000 x problems] resample
matrix; at 1M not run (estimated: over 70 s CPU and several GB for the resample matrices alone).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SIZES = (10_000, 100_000, 1_000_000)

STUDY_HEAD = """
[study]
name = "scale"
dataset = "builtin:arithmetic"
conditions = ["empty"]

[study.decoding]
answer_max_tokens = 8
"""
MODEL = """
[models.e{i}]
model = "openai-compatible/bench-{i}"
base_url = "{url}"
concurrency = {concurrency}
"""


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def problems(count: int) -> list[Any]:
    from cotbridge.datasets.answers import check_typed
    from cotbridge.records import Problem

    checker = functools.partial(check_typed, gold=4, answer_type="integer", tolerance=0.0)
    return [
        Problem(
            id=f"p{i:07d}",
            dataset="synthetic",
            prompt=[{"role": "user", "content": f"What is {i} + 4 - {i}? Answer with a number."}],
            gold=4,
            checker=checker,
        )
        for i in range(count)
    ]


def start_instant_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "instant_server.py"), "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().split()[-1]
    return proc, f"http://127.0.0.1:{port}/v1"


def child_study(size: int, evaluators: int, db: str, concurrency: int) -> dict[str, Any]:
    """Runs the synthetic study of `size` trials into `db`; its time, peak RSS and trial count."""
    from cotbridge.study import parse_study, run_study

    server, url = start_instant_server()
    try:
        text = STUDY_HEAD + "".join(MODEL.format(i=i, url=url, concurrency=concurrency) for i in range(evaluators))
        config = parse_study(text, "scale study")
        plan = problems(size // evaluators)
        start = time.perf_counter()
        summary = asyncio.run(run_study(config, db, problems=plan))
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    assert not summary.failures, summary.failures[:3]
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "trials": summary.trials}


def child_build_db(size: int, evaluators: int, db: str) -> dict[str, Any]:
    """Writes a results DB of `size` synthetic trials (see the module's docstring) straight through ResultsDB."""
    from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

    rng = random.Random(0)
    names = [f"e{i}" for i in range(evaluators)]
    models = {n: {"model": f"openai-compatible/bench-{n}", "price": {"input": 0.5, "output": 1.5}} for n in names}
    results = ResultsDB(db)
    results.save_study("scale", {"study": {"name": "scale"}, "models": models})
    start = time.perf_counter()
    trials: list[TrialRow] = []
    cots: list[ExplanationRow] = []
    for p in range(size // (2 * evaluators)):
        pid = f"p{p:07d}"
        for name in names:
            for condition in ("empty", "default"):
                draw = rng.random()
                answer = None if draw < 0.02 else ("x" if draw < 0.05 else str(rng.choice((3, 4, 4, 4, 5))))
                normalized = answer if answer not in (None, "x") else None
                trials.append(
                    TrialRow(
                        study="scale",
                        condition=condition,
                        variant="full",
                        evaluator=name,
                        source=name if condition == "default" else "",
                        sample_index=0,
                        problem_id=pid,
                        mode="context" if condition == "empty" else "own",
                        text=f"Answer: {answer}",
                        answer=answer,
                        normalized=normalized,
                        correct=None if normalized is None else normalized == "4",
                        prompt_tokens=40,
                        completion_tokens=4,
                        error_kind="APITimeoutError" if answer is None else None,
                        error="timed out" if answer is None else None,
                        truncated=draw > 0.99,
                    )
                )
            cots.append(
                ExplanationRow(
                    study="scale",
                    problem_id=pid,
                    source=name,
                    kind="greedy",
                    sample_index=0,
                    variant="full",
                    cot="Four.",
                    final_text="Answer: 4",
                    answer="4",
                    normalized="4",
                    correct=True,
                    truncated=rng.random() < 0.01,
                    prompt_tokens=30,
                    completion_tokens=20,
                )
            )
        if len(trials) >= 20_000:
            results.put_trials(trials)
            results.put_explanations(cots)
            trials, cots = [], []
    results.put_trials(trials)
    results.put_explanations(cots)
    results.close()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def child_report(db: str, fmt: str) -> dict[str, Any]:
    """`cotbridge report DB --format FMT` in this process (imports included), its output thrown away."""
    start = time.perf_counter()
    from cotbridge import cli

    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            code = cli.main(["report", db, "--format", fmt])
        finally:
            sys.stdout = stdout
    assert code == 0, f"report exited with {code}"
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def measure(*args: str) -> dict[str, Any]:
    """Runs one child (this script with `args`) and reads its figures from its last line."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-1m", action="store_true", help="only 10k and 100k")
    parser.add_argument("--evaluators", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64, help="each model's endpoint bound")
    parser.add_argument("--only", choices=["study", "report"], default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "study":
            figures = child_study(int(rest[0]), args.evaluators, rest[1], args.concurrency)
        elif kind == "build":
            figures = child_build_db(int(rest[0]), args.evaluators, rest[1])
        else:
            figures = child_report(rest[0], rest[1])
        print(json.dumps(figures))
        return
    sizes = SIZES[:2] if args.skip_1m else SIZES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            row: dict[str, Any] = {"size": size}
            if args.only in (None, "study"):
                study_db = str(Path(tmp) / f"study-{size}.db")
                common = ["--evaluators", str(args.evaluators), "--concurrency", str(args.concurrency)]
                row["study"] = measure(*common, "--child", "study", str(size), study_db)
                os.remove(study_db)
            if args.only in (None, "report"):
                report_db = str(Path(tmp) / f"report-{size}.db")
                row["build"] = measure("--evaluators", str(args.evaluators), "--child", "build", str(size), report_db)
                row["table"] = measure("--child", "report", report_db, "table")
                row["json"] = measure("--child", "report", report_db, "json")
                os.remove(report_db)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{args.evaluators} evaluators; study: condition empty, problems = size / {args.evaluators}")
    head = ["trials".rjust(10), f"{'study s':>8} {'trials/s':>9} {'RSS MB':>7}"]
    head += [f"{'report s':>8} {'RSS MB':>7}", f"{'json s':>7} {'RSS MB':>7}"]
    print("  ".join(head))
    for row in rows:
        study, table, js = row.get("study"), row.get("table"), row.get("json")
        cells = [f"{row['size']:>10,}"]
        cells.append(
            f"{study['seconds']:>8.1f} {study['trials'] / study['seconds']:>9.0f} {study['peak_rss_mb']:>7.0f}"
            if study
            else f"{'-':>8} {'-':>9} {'-':>7}"
        )
        cells.append(f"{table['seconds']:>8.1f} {table['peak_rss_mb']:>7.0f}" if table else f"{'-':>8} {'-':>7}")
        cells.append(f"{js['seconds']:>7.1f} {js['peak_rss_mb']:>7.0f}" if js else f"{'-':>7} {'-':>7}")
        print("  ".join(cells))


if __name__ == "__main__":
    main()
