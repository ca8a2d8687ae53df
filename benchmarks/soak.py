"""Soak: a study of 100,000+ requests against a server that injects faults and is killed, with the client killed too.

Runs one study twice through the `cotbridge` command against `soak_server.py`:
  1. fault-free: the reference (its served-request count sets when the kills below happen);
  2. faulty: 5% of requests fail in one of seven ways (429 with and without Retry-After, 500, connection reset,
     hang past the timeout, malformed body, answer truncated at its token cap). The server is killed (-9) and
     restarted once at 30% of the requests, the client killed (-9) at 60% and started again, which resumes.
Then it checks, and prints:
  - responses lost: good answers the server sent whose request is not in the client's cache (must be 0);
  - requests repeated: good answers sent twice; only requests in flight at a kill may be (at most the concurrency);
  - trials: every planned trial is stored, as an answer, a truncated answer, or a failure with its error;
    the report lists every stored failure;
  - the report on the trials both runs finished (answered, not truncated) is identical, answer by answer.

Measured here (2 cores): fault-free 100,008 requests in 66.9 s; faulty run 115.1 s with 10,255 faults injected,
0 responses lost, 9 requests repeated (64 could have been in flight), 116,676 of 116,676 trials stored (1,628 failed
and listed, 692 truncated), the 114,356 trials both runs finished answered alike and reported identically.

    python benchmarks/soak.py [--requests 100000] [--fault-rate 0.05] [--concurrency 64] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cotbridge.analysis.report import build_report  # noqa: E402
from cotbridge.study.results import ResultsDB  # noqa: E402

REQUESTS_PER_PROBLEM = 12  # 2 CoTs, then 10 answers: empty x2, default and transfer x2 evaluators x2 variants
LOG_LINE = 65  # a sha256 hex digest and a newline
STUDY = """
[study]
name = "soak"
dataset = "jsonl:{dataset}"
conditions = ["empty", "default", "transfer"]
answer_removal = "both"
filter_model = "rule"

[study.decoding]
cot_max_tokens = 256
answer_max_tokens = 32

[study.retry]
timeout_s = 2
initial_wait_s = 0.2
max_wait_s = 4

[models.a]
model = "openai-compatible/soak-a"
base_url = "http://127.0.0.1:{port}/v1"
thinking_format = "reasoning-field"
concurrency = {concurrency}

[models.b]
model = "openai-compatible/soak-b"
base_url = "http://127.0.0.1:{port}/v1"
thinking_format = "reasoning-field"
concurrency = {concurrency}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The soak server as a child process, on a fixed port so a restart is the same address."""

    def __init__(self, port: int, rate: float, log: Path) -> None:
        self.port, self.rate, self.log = port, rate, log
        self.proc: subprocess.Popen[str] | None = None
        self.outcomes: Counter[str] = Counter()  # summed over every life of the server

    def start(self) -> None:
        command = [sys.executable, str(HERE / "soak_server.py"), str(self.port)]
        command += ["--fault-rate", str(self.rate), "--log", str(self.log)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            raise SystemExit(f"soak server did not start: {line!r}")

    def _collect(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as reply:
            self.outcomes.update(json.load(reply)["outcomes"])

    def kill(self) -> None:
        """kill -9, after reading its counts (the counts of requests after the read are lost with it)."""
        assert self.proc is not None
        self._collect()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        assert self.proc is not None
        self._collect()
        self.proc.terminate()
        self.proc.wait()

    def served(self) -> int:
        return self.log.stat().st_size // LOG_LINE if self.log.exists() else 0


def client(study: Path, db: Path, out: Path) -> subprocess.Popen[bytes]:
    cotbridge = Path(sys.executable).with_name("cotbridge")
    with out.open("ab") as sink:
        return subprocess.Popen([str(cotbridge), "run", str(study), "--db", str(db)], stdout=sink, stderr=sink)


def write_study(work: Path, name: str, problems: int, port: int, concurrency: int) -> Path:
    dataset = work / "problems.jsonl"
    if not dataset.exists():
        lines = (
            json.dumps({"id": f"p{i}", "question": f"Case {i}: add the numbers.", "answer": 2}) for i in range(problems)
        )
        dataset.write_text("\n".join(lines) + "\n")
    study = work / f"{name}.toml"
    study.write_text(STUDY.format(dataset=dataset, port=port, concurrency=concurrency))
    return study


def fault_free(work: Path, problems: int, concurrency: int) -> tuple[Path, Path, float]:
    port = free_port()
    server = Server(port, 0.0, work / "clean.log")
    server.start()
    study, db = write_study(work, "clean", problems, port, concurrency), work / "clean.db"
    started = time.perf_counter()
    code = client(study, db, work / "clean.out").wait()
    seconds = time.perf_counter() - started
    server.stop()
    if code != 0:
        raise SystemExit(f"the fault-free run failed (exit {code}); see {work / 'clean.out'}")
    return db, server.log, seconds


def faulty(work: Path, problems: int, concurrency: int, rate: float, total: int) -> dict[str, Any]:
    """The faulty run with both kills; returns its timings and counts."""
    port = free_port()
    server = Server(port, rate, work / "faulty.log")
    server.start()
    study, db, out = write_study(work, "faulty", problems, port, concurrency), work / "faulty.db", work / "faulty.out"
    started = time.perf_counter()
    proc = client(study, db, out)
    events: dict[str, Any] = {}
    while proc.poll() is None:
        served = server.served()
        if "server_killed_at" not in events and served >= 0.3 * total:
            server.kill()
            events["server_killed_at"] = served
            time.sleep(3)
            server.start()
        if "client_killed_at" not in events and served >= 0.6 * total:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            events["client_killed_at"] = server.served()
            proc = client(study, db, out)
        time.sleep(0.05)
    events["exit"] = proc.returncode
    events["seconds"] = time.perf_counter() - started
    server.stop()
    events["outcomes"] = dict(server.outcomes)
    return {"db": db, "log": server.log, **events}


def served_keys(log: Path) -> Counter[str]:
    return Counter(log.read_text().split())


def cached_keys(db: Path) -> set[str]:
    """The server's key of every cached request (the same hash of the same body)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request FROM responses").fetchall()
    return {hashlib.sha256(json.dumps(json.loads(request), sort_keys=True).encode()).hexdigest() for (request,) in rows}


def trial_outcomes(db: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Trial key -> (answer, correct, failed, truncated)."""
    results = ResultsDB(db, read_only=True)
    try:
        return {
            (t.condition, t.variant, t.evaluator, t.source, t.sample_index, t.problem_id): (
                t.answer,
                t.correct,
                t.failed,
                t.truncated,
            )
            for t in results.trials("soak")
        }
    finally:
        results.close()


def report_on(db: Path, keep: set[tuple[Any, ...]], work: Path) -> dict[str, Any]:
    """The report of a copy of `db` that holds only the trials in `keep`: what both runs can be compared on."""
    copy = work / f"compare-{db.name}"
    shutil.copy(db, copy)
    with sqlite3.connect(copy) as conn:
        rows = conn.execute("SELECT rowid, condition, variant, evaluator, source, sample_index, problem_id FROM trials")
        drop = [(rowid,) for rowid, *key in rows if tuple(key) not in keep]
        conn.executemany("DELETE FROM trials WHERE rowid = ?", drop)
    results = ResultsDB(copy, read_only=True)
    try:
        report = build_report(results, "soak").as_json()
    finally:
        results.close()
    return {k: report[k] for k in ("conditions", "accuracy", "matrix", "modes")}


def stored_report_failures(db: Path) -> int:
    cotbridge = Path(sys.executable).with_name("cotbridge")
    text = subprocess.run([str(cotbridge), "report", str(db), "--format", "json"], capture_output=True, text=True)
    return len(json.loads(text.stdout)["failures"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="at least this many requests per run")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", type=Path, default=None, help="keep the DBs and logs in this folder")
    args = parser.parse_args()
    problems = math.ceil(args.requests / REQUESTS_PER_PROBLEM)
    work = args.keep or Path(tempfile.mkdtemp(prefix="cotbridge-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    clean_db, clean_log, clean_seconds = fault_free(work, problems, args.concurrency)
    total = sum(served_keys(clean_log).values())
    print(f"fault-free run: {problems} problems, {total} requests in {clean_seconds:.1f} s", flush=True)
    run = faulty(work, problems, args.concurrency, args.fault_rate, total)
    return check(work, clean_db, run, args.concurrency)


def check(work: Path, clean_db: Path, run: dict[str, Any], concurrency: int) -> int:
    served = served_keys(run["log"])
    repeated = sum(served.values()) - len(served)
    lost = len(set(served) - cached_keys(run["db"]))
    clean, dirty = trial_outcomes(clean_db), trial_outcomes(run["db"])
    failed = sum(o[2] for o in dirty.values())
    truncated = sum(o[3] for o in dirty.values())
    both = {k for k in clean if k in dirty and not any(clean[k][2:]) and not any(dirty[k][2:])}
    differing = sum(clean[k] != dirty[k] for k in both)
    same_report = report_on(clean_db, both, work) == report_on(run["db"], both, work)
    listed = stored_report_failures(run["db"])
    faults = {k: v for k, v in sorted(run["outcomes"].items()) if k != "ok"}
    print(
        f"faulty run: {run['seconds']:.1f} s, exit {run['exit']}; server killed at {run['server_killed_at']} and "
        f"client at {run['client_killed_at']} good answers"
    )
    print(f"  faults injected (counted by the server, up to each kill): {sum(faults.values())} {faults}")
    print(f"  good answers sent: {sum(served.values())} ({len(served)} distinct requests)")
    print(f"  responses lost: {lost}")
    print(f"  requests repeated: {repeated} (at most {concurrency} were in flight at the client kill)")
    print(
        f"  trials: {len(dirty)} of {len(clean)} planned stored; {failed} failed (stored with their error, "
        f"{listed} listed by the report), {truncated} truncated"
    )
    print(
        f"  finished in both runs: {len(both)} trials; answers differing: {differing}; report identical: {same_report}"
    )
    ok = lost == 0 and repeated <= concurrency and len(dirty) == len(clean) and listed == failed
    ok = ok and differing == 0 and same_report
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
