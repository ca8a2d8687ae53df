"""Study files, the runner (mixed providers, failures, resume) and the report, on real local servers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cotbridge import ConfigError
from cotbridge.analysis.render import render_html, render_table
from cotbridge.analysis.report import build_report
from cotbridge.study import load_study, parse_study, run_study
from cotbridge.study.results import ResultsDB
from tests.fault_server import FaultServer

REPO = Path(__file__).resolve().parent.parent

BASE = """
[study]
name = "t"
dataset = "builtin:arithmetic"
sample = 3
conditions = ["empty", "default", "sampled", "transfer"]
answer_removal = "both"
filter_model = "rule"

[study.retry]
max_attempts = 2
initial_wait_s = 0.05

[study.decoding]
cot_max_tokens = 24
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"

[models.generic]
model = "openai-compatible/ok"
base_url = "{faults}"
generator = false
"""


def test_errors_name_the_file_the_field_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[study]\nname = "x"\ndataset = "builtin:arithmetic"\nconditions = ["empty", "telepathy"]\n'
        'answer_removal = "filter"\n[models.a]\nmodel = "local/smollm2-135m"\nconcurency = 4\n'
    )
    with pytest.raises(ConfigError) as info:
        load_study(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "[study.conditions.1]" in message and "'empty', 'default', 'sampled', 'transfer' or 'ensemble'" in message
    assert "[models.a.concurency] unknown field" in message
    with pytest.raises(ConfigError, match="needs filter_model"):
        parse_study(
            BASE.format(llama="http://a/v1", faults="http://b/v1").replace('filter_model = "rule"', ""), "s.toml"
        )
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_study("[study", "s.toml")
    with pytest.raises(ConfigError, match="no study file"):
        load_study(tmp_path / "missing.toml")


def test_examples_parse_and_the_demo_is_the_embedded_example() -> None:
    for path in (REPO / "examples").glob("*.toml"):
        load_study(path)
    packaged = (REPO / "cotbridge" / "studies" / "demo.toml").read_text()
    assert packaged == (REPO / "examples" / "embedded_default.toml").read_text()


def test_a_generator_without_a_cot_is_refused_before_any_request(faults: FaultServer, tmp_path: Path) -> None:
    import asyncio

    text = BASE.format(llama="http://127.0.0.1:9/v1", faults=faults.base_url).replace("generator = false\n", "")
    with pytest.raises(ConfigError, match=r"\[models.generic\].*no reasoning channel.*generator = false"):
        asyncio.run(run_study(parse_study(text), tmp_path / "r.db"))
    assert faults.total == 0


def test_prefill_on_a_model_that_cannot_is_refused_before_any_request(faults: FaultServer, tmp_path: Path) -> None:
    text = BASE.format(llama="http://127.0.0.1:9/v1", faults=faults.base_url) + 'injection = "prefill"\n'
    with pytest.raises(ConfigError, match=r"\[models.generic\].*cannot take a CoT in 'prefill' mode"):
        import asyncio

        asyncio.run(run_study(parse_study(text), tmp_path / "r.db"))
    assert faults.total == 0


@pytest.fixture(scope="module")
def study_db(llama_server: str, fault_server: FaultServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base study run once on real servers; tests copy the DB before changing it."""
    import asyncio

    db = tmp_path_factory.mktemp("study") / "r.db"
    summary = asyncio.run(run_study(parse_study(BASE.format(llama=llama_server, faults=fault_server.base_url)), db))
    # 3 problems; evaluators smol and generic; smol is the only generator.
    # empty 3x2 + default 2 variants x 3x2 + sampled 2 variants x 3x2 + transfer 1 source x 2 variants x 3x2
    assert summary.trials == 6 + 12 + 12 + 12 and not summary.failures
    return db


async def test_mixed_study_runs_resumes_and_keeps_failures(
    llama_server: str, faults: FaultServer, study_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "r.db"
    db.write_bytes(study_db.read_bytes())
    config = parse_study(BASE.format(llama=llama_server, faults=faults.base_url))
    results = ResultsDB(db)
    modes = {(t.evaluator, t.mode) for t in results.trials("t") if t.condition == "transfer"}
    assert modes == {("smol", "prefill"), ("generic", "context")}
    # Resume: remove some finished trials (as if the run had been killed) and run again.
    results._conn.execute("DELETE FROM trials WHERE condition = 'transfer' AND evaluator = 'smol'")
    results.close()
    requests_before = faults.total
    again = await run_study(config, db)
    assert again.trials == 6 and again.skipped == 36
    assert faults.total == requests_before, "finished work must come from the cache"

    # A model whose server is down fails alone; its failed trials are stored, reported and counted.
    broken = BASE.format(llama=llama_server, faults="http://127.0.0.1:9/v1").replace('name = "t"', 'name = "t2"')
    summary = await run_study(parse_study(broken), db)
    assert summary.failures and all("generic" in f for f in summary.failures)
    results = ResultsDB(db)
    rows = list(results.trials("t2"))
    assert [t for t in rows if t.evaluator == "smol" and not t.failed], "the working model's trials must be done"
    failed = [t for t in rows if t.failed]
    assert failed and all("generic" in (t.evaluator, t.source) for t in failed)
    # its own trials failed on the connection; smol's transfer trials from its CoT failed for want of that CoT
    assert {t.error_kind for t in failed} == {"APIConnectionError", "MissingCoT"}
    assert all(t.answer is None and "127.0.0.1:9" in (t.error or "") for t in failed)
    report = build_report(results, "t2", "strict")
    assert len(report.failures) == len(failed) == summary.failed_trials
    assert report.as_json()["failures"] and "failed trial(s)" in render_html(report)
    results.close()
    # The server is back: a rerun does the failed trials again and replaces their failures.
    fixed = BASE.format(llama=llama_server, faults=faults.base_url).replace('name = "t"', 'name = "t2"')
    again = await run_study(parse_study(fixed), db)
    assert again.trials == len(failed) and not again.failures
    results = ResultsDB(db)
    assert not [t for t in results.trials("t2") if t.failed]
    results.close()


TWINS = """
[study]
name = "twins"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["default", "sampled", "transfer"]
samples = 2
answer_removal = "both"
filter_model = "rule"

[study.decoding]
cot_max_tokens = 24
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.one]
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"

[models.two]
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"
"""


async def test_two_entries_of_one_model_on_one_server_stay_apart(llama_server: str, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    summary = await run_study(parse_study(TWINS.format(llama=llama_server)), db)
    assert not summary.failures
    # per entry and problem: 1 greedy + 2 sampled CoTs; per variant, evaluator and problem: default 1 + sampled 2 +
    # transfer from both entries 2
    assert summary.explanations == 2 * 2 * 3 and summary.trials == 2 * 2 * 2 * 5
    results = ResultsDB(db)
    trials = list(results.trials("twins"))
    cots = list(results.explanations("twins"))
    results.close()
    names = {"one", "two"}
    for variant in ("full", "without_answer"):
        of_variant = [t for t in trials if t.variant == variant]
        assert {(t.evaluator, t.source) for t in of_variant if t.condition == "transfer"} == {
            (e, s) for e in names for s in names
        }
        assert {(t.evaluator, t.source) for t in of_variant if t.condition in ("default", "sampled")} == {
            (e, e) for e in names
        }
        assert {(c.source, c.kind) for c in cots if c.variant == variant} == {
            (s, k) for s in names for k in ("greedy", "sampled")
        }


def test_report_formats(study_db: Path) -> None:
    db = study_db
    results = ResultsDB(db)
    report = build_report(results, "t", "strict")
    results.close()
    names = {(c.name, c.variant) for c in report.conditions}
    assert {("empty", "full"), ("default", "without_answer"), ("transfer:smol", "full")} <= names
    assert set(report.matrix) == {"full", "without_answer"}
    assert report.matrix["full"]["sources"] == ["smol"]
    assert report.matrix["full"]["targets"] == ["generic", "smol"]
    page = render_html(report)
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    out = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "report", str(db), "--format", "json", "--metric", "paper"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["metric"] == "paper"
    keys = {"name", "metric", "mean", "std", "pairs", "ci_low", "ci_high", "coverage"}
    assert all(keys <= set(c) for c in data["conditions"])


@pytest.mark.slow
def test_demo_killed_halfway_resumes(tmp_path: Path) -> None:
    from tests.conftest import _have_local_model

    if _have_local_model():
        pytest.skip(_have_local_model() or "")
    db = tmp_path / "demo.db"
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotbridge.cli", "demo", "--db", str(db)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if done >= 20:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done >= 20, "the demo should have stored trials before it was killed"
    start = time.time()
    rerun = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "demo", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stdout and "consistency" in rerun.stdout
    again = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "demo", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "0 trial(s) run" in again.stdout
    assert time.time() - start < 300


EDITED = """
[study]
name = "edited"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "default"]

[study.decoding]
answer_max_tokens = {answer}

[models.a]
model = "openai-compatible/ok"
base_url = "{faults}"
generator = false
{price}

[models.b]
model = "openai-compatible/reasoner"
base_url = "{faults}"
generator = false
"""


async def test_an_edited_study_redoes_what_the_edit_changed(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "e.db"

    def study(answer: int, price: str = "") -> object:
        return parse_study(EDITED.format(answer=answer, faults=faults.base_url, price=price))

    first = await run_study(study(16), db)  # type: ignore[arg-type]
    assert (first.trials, first.skipped, first.changed) == (8, 0, 0)
    same = await run_study(study(16), db)  # type: ignore[arg-type]
    assert (same.trials, same.skipped) == (0, 8)
    edited = await run_study(study(32), db)  # type: ignore[arg-type]
    assert (edited.trials, edited.skipped, edited.changed) == (8, 0, 8), "a new answer budget must not reuse answers"
    priced = await run_study(study(32, "price = {input = 1, output = 2}"), db)  # type: ignore[arg-type]
    assert (priced.trials, priced.skipped) == (0, 8), "a price does not change what a model answers"
    bodies = [json.loads(r[0]) for r in sqlite3.connect(db).execute("SELECT request FROM responses WHERE op = 'chat'")]
    assert {b.get("max_tokens") for b in bodies} >= {16, 32}


CUT = """
[study]
name = "cut"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty"]
{retry}

[study.decoding]
answer_max_tokens = 64

[models.r]
model = "openai-compatible/budget-reasoner"
base_url = "{faults}"
generator = false

[models.ok]
model = "openai-compatible/ok"
base_url = "{faults}"
generator = false
"""


async def test_an_answer_cut_off_before_it_began_is_truncated_not_cached(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "cut.db"
    await run_study(parse_study(CUT.format(faults=faults.base_url, retry="")), db)
    results = ResultsDB(db)
    cut = [t for t in results.trials("cut") if t.evaluator == "r"]
    assert len(cut) == 2 and all(t.truncated for t in cut)
    report = build_report(results, "cut", "strict")
    assert report.truncated == {"empty/full": 2} and report.as_json()["truncated"] == {"empty/full": 2}
    assert report.conditions[0].coverage == 0.0, "a truncated answer counts as an invalid one"
    results.close()
    stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM responses WHERE model = 'budget-reasoner'").fetchone()
    assert stored == (0,), "a completion cut off before any answer is not cached"
    # The study may ask such trials once more with larger budgets.
    retried = await run_study(parse_study(CUT.format(faults=faults.base_url, retry="retry_truncated = 4")), db)
    assert retried.trials == 4 and retried.changed == 4
    results = ResultsDB(db)
    assert not [t for t in results.trials("cut") if t.truncated]
    assert {t.answer for t in results.trials("cut") if t.evaluator == "r"} == {"42"}
    results.close()


CUT_COTS = """
[study]
name = "cut-cots"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["default"]

[study.decoding]
cot_max_tokens = 64
answer_max_tokens = 64

[models.r]
model = "openai-compatible/budget-reasoner"
base_url = "{faults}"
thinking_format = "reasoning-field"
"""


async def test_the_report_counts_cots_cut_off_at_their_cap(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "cut-cots.db"
    await run_study(parse_study(CUT_COTS.format(faults=faults.base_url)), db)
    results = ResultsDB(db)
    assert [e.truncated for e in results.explanations("cut-cots")] == [True, True]
    report = build_report(results, "cut-cots", "strict")
    results.close()
    assert report.truncated_cots == {"r/greedy": 2} and report.as_json()["truncated_cots"] == {"r/greedy": 2}
    console = Console(record=True, width=200)
    render_table(report, console)
    assert "2 CoT(s) cut off at cot_max_tokens" in console.export_text()
    assert "2 CoT(s) cut off at cot_max_tokens" in render_html(report)


async def test_credentials_in_a_base_url_are_not_stored(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "creds.db"
    with_creds = faults.base_url.replace("http://", "http://user:hunter2@")
    text = EDITED.format(answer=8, faults=with_creds, price="").replace('name = "edited"', 'name = "creds"')
    summary = await run_study(parse_study(text), db)
    assert summary.trials == 8 and not summary.failures
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"hunter2" not in stored
    results = ResultsDB(db)
    assert results.study_config("creds")["models"]["a"]["base_url"] == faults.base_url
    results.close()


# -- the runner at scale: bounded pools, lazy jobs, group commits ------------------------------------------------


async def test_a_phase_never_has_more_jobs_in_flight_than_its_bound_and_makes_them_lazily() -> None:
    import asyncio

    from cotbridge.study.phases import Progress, RunSummary, Stream, _Phases

    made = started = finished = 0
    most_made_ahead = most_in_flight = 0

    async def job(i: int) -> int:
        nonlocal started, finished, most_in_flight
        started += 1
        most_in_flight = max(most_in_flight, started - finished)
        await asyncio.sleep(0)
        finished += 1
        return i

    def jobs(count: int) -> Iterator[Any]:
        nonlocal made, most_made_ahead
        for i in range(count):
            made += 1
            most_made_ahead = max(most_made_ahead, made - finished)  # made but not finished: held in memory
            yield job(i)

    events: list[Progress] = []
    stored: list[int] = []
    plan = 20_000  # a plan far larger than the pool: gathering it all at once would hold 20,000 coroutines
    streams = [Stream("a", 8, jobs(plan)), Stream("b", 3, jobs(plan // 10))]
    await _Phases(RunSummary(), events.append).run("trials", plan + plan // 10, streams, stored.extend)
    assert sorted(stored) == sorted([*range(plan), *range(plan // 10)])
    assert most_in_flight <= 8 + 3, "each stream runs at most its bound at once"
    assert most_made_ahead <= 8 + 3, "a job is made only when a worker takes it"
    assert events[0].total == plan + plan // 10 and sum(e.done for e in events) == plan + plan // 10


async def test_results_count_as_done_only_once_their_group_is_committed() -> None:
    import asyncio

    from cotbridge.study import phases as runner
    from cotbridge.study.phases import Progress, RunSummary, Stream, _Phases

    committed: set[int] = set()
    groups: list[int] = []

    async def job(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 3))
        return i

    def store(group: list[int]) -> None:
        groups.append(len(group))
        committed.update(group)

    events: list[Progress] = []
    seen: list[int] = []

    def cached(result: int) -> bool:  # asked as the item is reported done
        seen.append(result)
        assert result in committed, "an item is reported done only after its row is committed"
        return False

    jobs = (job(i) for i in range(3000))
    await _Phases(RunSummary(), events.append).run("trials", 3000, [Stream("s", 64, jobs)], store, cached)
    assert sorted(seen) == list(range(3000)) and sum(e.done for e in events) == 3000
    assert len(groups) < 3000 / 8, f"rows are written in groups, not one per transaction: {len(groups)} groups"
    assert max(groups) <= runner.FLUSH_ROWS


async def test_a_slow_phase_commits_its_rows_within_the_flush_interval() -> None:
    import asyncio

    from cotbridge.study import phases as runner
    from cotbridge.study.phases import RunSummary, Stream, _Phases

    commits: list[float] = []
    done_at: dict[int, float] = {}

    async def job(i: int) -> int:
        await asyncio.sleep(0.02 * i)
        done_at[i] = time.monotonic()
        return i

    def store(group: list[int]) -> None:
        now = time.monotonic()
        commits.append(now)
        for i in group:
            assert now - done_at[i] < runner.FLUSH_AFTER_S + 0.05, "a finished row waits at most one flush interval"

    await _Phases(RunSummary(), lambda event: None).run(
        "trials", 8, [Stream("s", 8, (job(i) for i in range(8)))], store
    )
    assert len(commits) >= 2, "a phase that trickles commits as it goes, not once at its end"


def test_fingerprints_of_many_trials_equal_one_at_a_time() -> None:
    from cotbridge.datasets import load_dataset
    from cotbridge.records import Condition, Variant
    from cotbridge.study.fingerprint import TrialFingerprints, trial_fingerprint

    config = parse_study(BASE.format(llama="http://a/v1", faults="http://b/v1"))
    many = TrialFingerprints(config)
    problems = load_dataset("builtin:arithmetic")[:4]
    cases = [
        ("smol", Variant.FULL, Condition.EMPTY, "", 0),
        ("generic", Variant.WITHOUT_ANSWER, Condition.TRANSFER, "smol", 0),
        ("smol", Variant.FULL, Condition.SAMPLED, "smol", 1),
    ]
    for case in cases:
        for problem in problems:
            assert many.of(*case, problem) == trial_fingerprint(config, *case, problem)
    assert len({many.of(*cases[0], p) for p in problems}) == len(problems)


def _synthetic_problems(count: int) -> list[Any]:
    import functools

    from cotbridge.datasets.answers import check_typed
    from cotbridge.records import Problem

    checker = functools.partial(check_typed, gold=4, answer_type="integer", tolerance=0.0)
    return [
        Problem(
            id=f"p{i:05d}",
            dataset="synthetic",
            prompt=[{"role": "user", "content": f"What is {i} + 4 - {i}?"}],
            gold=4,
            checker=checker,
        )
        for i in range(count)
    ]


MANY = """
[study]
name = "many"
dataset = "builtin:arithmetic"
conditions = ["empty"]

[models.a]
model = "openai-compatible/ok"
base_url = "{faults}"
concurrency = 4

[models.b]
model = "openai-compatible/ok"
base_url = "{faults}"
concurrency = 4
extra_body = {{ user = "b" }}
"""


async def test_a_large_plan_runs_in_groups_and_resumes_by_key_lookups(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    config = parse_study(MANY.format(faults=faults.base_url))
    problems = _synthetic_problems(600)
    summary = await run_study(config, db, problems=problems)
    assert summary.trials == 1200 and not summary.failures
    assert faults.max_in_flight["ok"] <= 4, "the endpoint's bound holds (both entries share the server)"
    with sqlite3.connect(db) as conn:
        rows, commits = conn.execute("SELECT COUNT(*), COUNT(DISTINCT created_at) FROM trials").fetchone()
    assert rows == 1200 and commits < rows / 4, f"rows are committed in groups: {commits} commits for {rows} rows"
    sent = faults.total
    again = await run_study(config, db, problems=problems)
    assert again.skipped == 1200 and again.trials == 0 and faults.total == sent
    # An edited study redoes what the edit changed, found by one primary-key lookup per planned trial.
    edited = parse_study(MANY.format(faults=faults.base_url).replace('user = "b"', 'user = "c"'))
    third = await run_study(edited, db, problems=problems)
    assert third.skipped == 600 and third.changed == 600 and third.trials == 600


async def test_a_results_db_that_fails_stops_the_phase_with_its_error() -> None:
    import asyncio

    from cotbridge.study.phases import RunSummary, Stream, _Phases

    async def job(i: int) -> int:
        await asyncio.sleep(0)
        return i

    def store(group: list[int]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    made = 0

    def jobs() -> Iterator[Any]:
        nonlocal made
        for i in range(100_000):
            made += 1
            yield job(i)

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await _Phases(RunSummary(), lambda event: None).run("trials", 100_000, [Stream("s", 4, jobs())], store)
    assert made < 100_000, "the phase stopped at the failure instead of running its whole plan"


# -- phases side by side: a problem's trials start once its own CoTs exist ------------------------------------------


async def test_readiness_gives_every_consumer_each_problem_once_in_the_order_it_became_ready() -> None:
    import asyncio

    from cotbridge.datasets import load_dataset
    from cotbridge.study.readiness import Readiness

    problems = load_dataset("builtin:arithmetic")[:4]
    ids = [p.id for p in problems]
    ready = Readiness(problems, 2)
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def consume(name: str) -> None:
        async for problem in ready.ready():
            seen[name].append(problem.id)

    consumers = [asyncio.ensure_future(consume(name)) for name in seen]
    await asyncio.sleep(0)
    for problem_id in (ids[2], ids[2], ids[0], ids[1]):  # problem 2 settles both its items first
        ready.settle(problem_id)
        await asyncio.sleep(0)
    assert seen == {"a": [ids[2]], "b": [ids[2]]}, "a problem is ready only once all it waits for has settled"
    ready.expect(ids[3], 1)  # learnt late: problem 3 waits for one more (3 in all)
    ready.settle(ids[3], 2)
    ready.close()  # the steps that settle them ended: problems 0, 1 and 3 wait for nothing more
    await asyncio.wait_for(asyncio.gather(*consumers), 5)
    assert seen["a"] == seen["b"] == [ids[2], ids[0], ids[1], ids[3]]


async def test_a_problems_trials_start_before_the_slowest_cot_of_the_study_is_made(
    faults: FaultServer, tmp_path: Path
) -> None:
    """The phases run side by side: with CoTs made one at a time by a slow server, the evaluator already answers
    the first problems (their answer-removed CoTs included) while later problems' CoTs are still being made."""
    text = f"""
[study]
name = "side-by-side"
dataset = "builtin:arithmetic"
sample = 8
conditions = ["transfer"]
answer_removal = "both"
filter_model = "rule"

[models.slow]
model = "openai-compatible/slow"
base_url = "{faults.base_url}"
thinking_format = "think-tags"
max_concurrency = 1
evaluator = false

[models.fast]
model = "openai-compatible/ok"
base_url = "{faults.base_url}"
generator = false
"""
    db = tmp_path / "r.db"
    summary = await run_study(parse_study(text), db)
    assert not summary.failures and summary.trials == 8 * 2
    with sqlite3.connect(db) as conn:
        finished = {
            model: (first, last)
            for model, first, last in conn.execute(
                "SELECT model, MIN(created_at), MAX(created_at) FROM responses GROUP BY model"
            )
        }
        variants = {v for (v,) in conn.execute("SELECT DISTINCT variant FROM trials")}
    assert finished["ok"][0] < finished["slow"][1], "the first trials ran while CoTs were still being made"
    assert variants == {"full", "without_answer"}
