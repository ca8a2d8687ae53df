"""Batch mode (`batch = true`, study `mode = "batch"`): OpenAI's Batch API and Anthropic's Message Batches.

The vendors cannot be reached from here: the real client talks HTTP to imitations of both batch APIs
(tests/imitations/openai_batch.py, anthropic_batch.py, each following the vendor's reference), served by the fault
server beside the live Responses and Messages imitations, so live and batch answers come from the same rules.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cotbridge import Bridge, BudgetExceeded, ConfigError, RetryPolicy
from cotbridge.analysis.render import render_html, render_table
from cotbridge.analysis.report import build_report
from cotbridge.cache.batch_jobs import BatchJobStore
from cotbridge.datasets import load_dataset
from cotbridge.options import Price
from cotbridge.providers.sent_live import SENT_LIVE
from cotbridge.records import Condition, Variant
from cotbridge.study import parse_study, run_study
from cotbridge.study.fingerprint import trial_fingerprint
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow
from tests.conftest import REPO
from tests.fault_server import FaultServer
from tests.imitations.anthropic_batch import AnthropicBatchImitation
from tests.imitations.openai_batch import ITEM_ERROR_MARKER, OpenAIBatchImitation

if importlib.util.find_spec("litellm") is None:
    pytest.skip("anthropic/ needs the extra `hosted` (pip install -e '.[hosted]')", allow_module_level=True)

SECRET = "sk-batch-test-0c41d2"
FAST: dict[str, Any] = {"batch": True, "batch_poll_s": 0.01}


def ask(i: int, extra: str = "") -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} + 25?{extra}"}]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.setenv(var, SECRET)


def _where(faults: FaultServer, vendor: str) -> tuple[str, str, OpenAIBatchImitation | AnthropicBatchImitation]:
    """(model string, base_url, the batch imitation) of one vendor."""
    if vendor == "openai":
        return "openai/o3", faults.base_url, faults.openai_batch
    return "anthropic/claude-sonnet-4-5", faults.root_url, faults.anthropic_batch


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_batch_answers_fill_the_cache_rows_a_live_run_reads(
    vendor: str, faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    model, url, imitation = _where(faults, vendor)
    db = tmp_path / "cache.db"
    async with Bridge(cache=db) as bridge:
        batched = bridge.model(model, base_url=url, **FAST)
        answers = await asyncio.gather(*(batched.chat(ask(i), max_tokens=64) for i in range(4)))
    assert imitation.created == 1  # four concurrent requests, one job
    assert faults.total == 0  # nothing went to the live endpoint
    assert all(a.text and a.reasoning and not a.cached for a in answers)
    assert len({a.text for a in answers}) == 4
    assert SECRET.encode() not in db.read_bytes()
    async with Bridge(cache=db) as bridge:
        live = bridge.model(model, base_url=url)
        again = await asyncio.gather(*(live.chat(ask(i), max_tokens=64) for i in range(4)))
        fresh = await live.chat(ask(99), max_tokens=64)  # the live imitation answers as the batch one did
    assert [a.text for a in again] == [a.text for a in answers] and all(a.cached for a in again)
    assert [a.reasoning for a in again] == [a.reasoning for a in answers]
    assert faults.total == 1 and fresh.reasoning == answers[0].reasoning
    async with Bridge(cache=db) as bridge:  # and the other way round: a live answer serves a batch model
        cached = await bridge.model(model, base_url=url, **FAST).chat(ask(99), max_tokens=64)
    assert cached.cached and cached.text == fresh.text and imitation.created == 1


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_expired_and_errored_items_are_sent_live_and_reported(
    vendor: str, faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    model, url, imitation = _where(faults, vendor)
    imitation.expire_jobs = 1
    async with Bridge(cache=tmp_path / "cache.db") as bridge:
        batched = bridge.model(model, base_url=url, **FAST)
        answers = await asyncio.gather(*(batched.chat(ask(i), max_tokens=64) for i in range(3)))
        notes = list(bridge.stats.notes)
        erred = await batched.chat(ask(7, ITEM_ERROR_MARKER), max_tokens=64)  # a job of its own, one item errors
        later = list(bridge.stats.notes)
    assert all(a.text for a in answers) and erred.text
    assert imitation.created == 2
    assert faults.total == 3  # two expired requests and the errored one, each sent live once
    assert len(notes) == 1 and "expired" in notes[0] and "2 of its 3 requests have no result" in notes[0]
    assert len(later) == 2 and "1 of its 1 requests have no result" in later[1] and "sent live" in later[1]
    async with Bridge(cache=tmp_path / "cache.db") as bridge:  # everything is in the cache now
        again = await bridge.model(model, base_url=url, **FAST).chat(ask(2), max_tokens=64)
    assert again.cached and imitation.created == 2


async def test_an_outage_while_polling_is_waited_out_not_sent_live(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    faults.openai_batch.fail_retrievals = 3  # more than one poll's retries
    retry = RetryPolicy(max_attempts=2, initial_wait_s=0.01, jitter_s=0.0)
    async with Bridge(cache=tmp_path / "cache.db", retry=retry) as bridge:
        batched = bridge.model("openai/o3", base_url=faults.base_url, **FAST)
        answers = await asyncio.gather(*(batched.chat(ask(i), max_tokens=64) for i in range(2)))
        notes = list(bridge.stats.notes)
    assert all(a.text for a in answers) and faults.openai_batch.fail_retrievals == 0
    assert faults.total == 0 and faults.openai_batch.created == 1
    assert len(notes) == 1 and notes[0].startswith("openai/o3: polling batch job") and "polled again" in notes[0]


_KILLED_RUN = """
import asyncio, sys
from cotbridge import Bridge

async def main():
    async with Bridge(cache=sys.argv[1]) as bridge:
        model = bridge.model(sys.argv[2], base_url=sys.argv[3], batch=True, batch_poll_s=3600)
        asks = [[{"role": "user", "content": f"What is {i} + 25?"}] for i in range(3)]
        await asyncio.gather(*(model.chat(a, max_tokens=64) for a in asks))

asyncio.run(main())
"""


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_a_killed_run_polls_its_stored_job_and_never_resubmits(
    vendor: str, faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    model, url, imitation = _where(faults, vendor)
    db = tmp_path / "cache.db"
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET}
    run = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(db), model, url], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while imitation.retrievals < 1 and run.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert imitation.created == 1 and imitation.retrievals >= 1
    finally:
        run.kill()  # SIGKILL while it waits to poll again
        run.wait()
    jobs = BatchJobStore(db).jobs()
    assert len(jobs) == 1 and jobs[0]["requests"] == 3 and jobs[0]["provider"] == vendor
    async with Bridge(cache=db) as bridge:
        batched = bridge.model(model, base_url=url, **FAST)
        answers = await asyncio.gather(*(batched.chat(ask(i), max_tokens=64) for i in range(3)))
    assert all(a.text and not a.cached for a in answers)
    assert imitation.created == 1 and faults.total == 0  # polled, not resubmitted
    assert BatchJobStore(db).jobs()[0]["status"] in ("completed", "ended")


async def test_each_sample_has_its_own_batch_item_and_more_samples_later_are_new_items(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    imitation = faults.openai_batch
    imitation.jobs.clear()
    db = tmp_path / "cache.db"
    async with Bridge(cache=db) as bridge:
        two = await bridge.model("openai/o3", base_url=faults.base_url, **FAST).chat(
            ask(1), max_tokens=64, temperature=1.0, n=2
        )
    assert len(two) == 2 and imitation.created == 1
    first_ids = [line["custom_id"] for job in imitation.jobs.values() for line in job.lines]
    assert [i.rsplit("-", 1)[1] for i in sorted(first_ids)] == ["0", "1"]
    async with Bridge(cache=db) as bridge:  # a third sample later: its own item, never sample 0's stored result
        three = await bridge.model("openai/o3", base_url=faults.base_url, **FAST).chat(
            ask(1), max_tokens=64, temperature=1.0, n=3
        )
    assert [c.cached for c in three] == [True, True, False]
    assert imitation.created == 2
    later = [
        line["custom_id"] for job in imitation.jobs.values() for line in job.lines if line["custom_id"] not in first_ids
    ]
    assert len(later) == 1 and later[0].endswith("-2") and later[0].rsplit("-", 1)[0] == first_ids[0].rsplit("-", 1)[0]


async def test_batch_models_pay_the_batch_price(faults: FaultServer, keys: None) -> None:
    async with Bridge(budget_usd=5.0) as bridge:
        live = bridge.model("openai/gpt-5-mini", base_url=faults.base_url)
        batched = bridge.model("openai/gpt-5-mini", base_url=faults.base_url, **FAST)
        assert live.price == Price(input=0.25, output=2.0)  # litellm's bundled map, live and batch
        assert batched.price == Price(input=0.125, output=1.0)
        # no batch price in the map: the live price times the provider's batch discount (capabilities.toml)
        old = bridge.model("openai/gpt-3.5-turbo", base_url=faults.base_url, **FAST)
        assert old.price == Price(input=0.25, output=0.75)
        claude = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url, **FAST)
        assert claude.price == Price(input=1.5, output=7.5)
        answer = await batched.chat(ask(1), max_tokens=64)
        assert bridge.budget is not None
        spent = bridge.budget.spent_usd
        assert spent == pytest.approx(batched.price.cost(answer.usage)) and spent > 0
        given = bridge.model("openai/gpt-5-mini", base_url=faults.base_url, price={"input": 1, "output": 1}, **FAST)
        assert given.price == Price(input=1, output=1)  # a price given is taken as it is


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
async def test_a_request_its_job_did_not_answer_is_charged_the_live_price(
    vendor: str, faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    model, url, _ = _where(faults, vendor)
    async with Bridge(cache=tmp_path / "cache.db", budget_usd=5.0) as bridge:
        batched = bridge.model(model, base_url=url, **FAST)
        live = bridge.model(model, base_url=url)
        answered, erred = await asyncio.gather(
            batched.chat(ask(1), max_tokens=64), batched.chat(ask(2, ITEM_ERROR_MARKER), max_tokens=64)
        )
        assert bridge.budget is not None and batched.price is not None and live.price is not None
        spent = bridge.budget.spent_usd
    assert faults.total == 1  # the errored item, sent live
    assert live.price == Price(input=batched.price.input * 2, output=batched.price.output * 2)  # the map's prices
    assert erred.usage.completion_tokens > 0 and spent > 0
    assert spent == pytest.approx(batched.price.cost(answered.usage) + live.price.cost(erred.usage))
    assert erred.raw[SENT_LIVE] and SENT_LIVE not in answered.raw
    async with Bridge(cache=tmp_path / "cache.db") as bridge:  # the cache row keeps the mark
        again = await bridge.model(model, base_url=url, **FAST).chat(ask(2, ITEM_ERROR_MARKER), max_tokens=64)
    assert again.cached and again.raw[SENT_LIVE] == erred.raw[SENT_LIVE]
    # Read back from the cache (a resumed study), its tokens still count as sent live.
    assert (again.usage.live_prompt_tokens, again.usage.live_completion_tokens) == (
        erred.usage.prompt_tokens,
        erred.usage.completion_tokens,
    )


async def test_a_price_given_to_a_batch_model_is_its_batch_price_and_live_costs_twice(
    faults: FaultServer, keys: None
) -> None:
    """Both vendors bill batches at half the live price (capabilities.toml's `batch.price_factor`, citing their
    pricing pages): a price given to a batch model is what its batch requests cost, its requests sent live twice."""
    async with Bridge(budget_usd=5.0) as bridge:
        given = bridge.model("openai/o3", base_url=faults.base_url, price={"input": 1, "output": 3}, **FAST)
        erred = await given.chat(ask(3, ITEM_ERROR_MARKER), max_tokens=64)
        assert bridge.budget is not None
        spent = bridge.budget.spent_usd
    assert faults.total == 1 and spent > 0
    assert spent == pytest.approx(Price(input=2, output=6).cost(erred.usage))


async def test_a_batch_models_request_reserves_its_worst_case_at_the_live_price(
    faults: FaultServer, keys: None
) -> None:
    """Its job may give it no result, and then it is billed at the live price: a budget that holds its worst case
    at the batch price but not at the live price refuses it, as it refuses the same request of the live model."""
    refusals = []
    async with Bridge(budget_usd=0.03) as bridge:
        for options in ({}, FAST):
            with pytest.raises(BudgetExceeded) as refused:
                await bridge.model("openai/o3", base_url=faults.base_url, **options).chat(ask(4), max_tokens=4000)
            refusals.append(str(refused.value))
        assert bridge.budget is not None and bridge.budget.spent_usd == 0 == bridge.budget.reserved_usd
    assert refusals[0] == refusals[1]
    worst = float(refusals[0].split("could cost up to $")[1].split(",")[0])
    assert worst / 2 < 0.03 < worst  # at the batch price the request would have fitted
    assert faults.total == 0 and faults.openai_batch.created == 0


def test_the_report_counts_tokens_sent_live_at_the_live_price(tmp_path: Path) -> None:
    """A batch model's stored price is its batch price; the trials and CoTs whose requests went live are priced at
    the live price (for a price given: twice it, as the vendors' batch discount is half), and a line says so."""
    results = ResultsDB(tmp_path / "study.db")
    models = {
        "o3": {"model": "openai/o3", "batch": True, "price": {"input": 1.0, "output": 4.0}},  # the bundled batch price
        "claude": {"model": "anthropic/claude-sonnet-4-5", "batch": True, "price": {"input": 1.0, "output": 1.0}},
        "mini": {"model": "openai/gpt-5-mini", "price": {"input": 0.25, "output": 2.0}},
    }
    results.save_study("s", {"models": models})
    key = dict(study="s", variant="full", source="", sample_index=0, mode="prefill", text="t", answer="1")
    trial = dict(key, condition="empty", normalized="1", correct=True, prompt_tokens=1000, completion_tokens=3000)
    sent_live = dict(live_prompt_tokens=1000, live_completion_tokens=3000)
    results.put_trials(
        [
            TrialRow(**trial, evaluator="o3", problem_id="p1"),  # type: ignore[arg-type]
            TrialRow(**trial, evaluator="o3", problem_id="p2", **sent_live),  # type: ignore[arg-type]
            TrialRow(**trial, evaluator="claude", problem_id="p1", **sent_live),  # type: ignore[arg-type]
            TrialRow(**trial, evaluator="mini", problem_id="p1"),  # type: ignore[arg-type]
        ]
    )
    cot = dict(study="s", problem_id="p1", source="o3", kind="greedy", sample_index=0, variant="full", cot="c")
    done = dict(final_text="t", answer="1", normalized="1", correct=True, truncated=False)
    results.put_explanations(
        [ExplanationRow(**cot, **done, prompt_tokens=500, completion_tokens=2000, live_prompt_tokens=500)]  # type: ignore[arg-type]
    )
    report = build_report(results, "s")
    o3, claude, mini = (report.costs[name] for name in ("o3", "claude", "mini"))
    at_batch, at_live = (1000 * 1 + 3000 * 4) / 1e6, (1000 * 2 + 3000 * 8) / 1e6
    cots = (500 * 2 + 2000 * 4) / 1e6  # the CoT's prompt went live, its completion came from the job
    assert o3["rows"]["empty/full"]["usd"] == pytest.approx(at_batch + at_live)
    assert o3["rows"]["CoTs (greedy, full)"]["usd"] == pytest.approx(cots)
    assert o3["rows"]["CoTs (greedy, full)"]["live_prompt_tokens"] == 500
    assert "live_prompt_tokens" not in mini["rows"]["empty/full"]  # rows of models run live are as they were
    assert o3["usd"] == pytest.approx(at_batch + at_live + cots)
    assert o3["live"] == {
        "prompt_tokens": 1500,
        "completion_tokens": 3000,
        "price": {"input": 2.0, "output": 8.0},
        "usd": pytest.approx((1500 * 2 + 3000 * 8) / 1e6),
    }
    assert claude["usd"] == pytest.approx((1000 * 2 + 3000 * 2) / 1e6)  # the price given, over the batch discount
    assert mini["usd"] == pytest.approx((1000 * 0.25 + 3000 * 2) / 1e6) and mini["live"] is None
    console = Console(record=True, width=250)
    render_table(report, console)
    shown = console.export_text()
    line = next(line for line in shown.splitlines() if line.startswith("o3: "))
    assert "1,500 prompt and 3,000 completion tokens were sent live" in line
    assert "live price (2 / 8 USD per M in/out): 0.0270 of its 0.0480 USD" in line
    lines = [line.split(":")[0] for line in shown.splitlines() if "were sent live" in line]
    assert lines == ["claude", "o3"]  # mini ran live: no line
    assert "1,500 prompt and 3,000 completion tokens were sent live" in render_html(report)


async def test_batch_on_a_provider_without_a_batch_api_is_refused(keys: None, tmp_path: Path) -> None:
    async with Bridge() as bridge:
        with pytest.raises(ConfigError, match=r"deepseek/deepseek-chat: batch = true .*openai/, anthropic/"):
            bridge.model("deepseek/deepseek-chat", batch=True)
        with pytest.raises(ConfigError, match="batch_poll_s"):
            bridge.model("openai/o3", batch=True, batch_poll_s=0)
    with pytest.raises(ConfigError, match=r"\[models.local\] batch = true, but vllm/ has no batch API"):
        parse_study(_study("live", 'model = "vllm/Qwen/QwQ-32B"\nbatch = true'))
    with pytest.raises(ConfigError, match="mode"):
        parse_study(_study("bulk", 'model = "vllm/Qwen/QwQ-32B"'))


def test_study_batch_mode_applies_to_models_with_a_batch_api() -> None:
    config = parse_study(_study("batch", 'model = "vllm/Qwen/QwQ-32B"'))
    assert config.models["o3"].batch and config.models["o3"].options().batch
    assert not config.models["local"].batch
    assert not parse_study(_study("live", 'model = "vllm/Qwen/QwQ-32B"')).models["o3"].batch


def _study(mode: str, local: str, url: str = "http://127.0.0.1:9/v1", name: str = "batchy") -> str:
    return f"""
[study]
name = "{name}"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "default", "transfer"]
mode = "{mode}"

[study.decoding]
cot_max_tokens = 16
answer_max_tokens = 8

[models.local]
{local}

[models.o3]
model = "openai/o3"
base_url = "{url}"
generator = false
batch_poll_s = 0.01
"""


async def test_a_study_in_batch_mode_and_its_live_rerun_share_the_cache(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    claude = f'model = "anthropic/claude-3-7-sonnet-latest"\nbase_url = "{faults.root_url}"\nbatch_poll_s = 0.01'
    db = tmp_path / "study.db"
    faults.openai_batch.expire_jobs = 1  # o3's first job expires: its unfinished requests go live, and are reported
    summary = await run_study(parse_study(_study("batch", claude, faults.base_url, "in-batch")), db)
    assert not summary.failures
    assert faults.openai_batch.created >= 2 and faults.anthropic_batch.created >= 2  # a job per phase
    expired = [note for note in summary.notes if "expired" in note]
    assert len(expired) == 1 and expired[0].startswith("openai/o3: batch job") and "sent live" in expired[0]
    assert faults.total == int(expired[0].split(";")[1].split()[0])  # only those went to the live endpoint
    jobs = BatchJobStore(db).jobs()
    assert {job["provider"] for job in jobs} == {"openai", "anthropic"}
    assert {job["status"] for job in jobs} == {"completed", "ended", "expired"}
    faults.reset_counts()
    summary = await run_study(parse_study(_study("live", claude, faults.base_url, "live-again")), db)
    assert not summary.failures
    assert faults.total == 0 and faults.openai_batch.created == 0  # every answer came from the cache


async def test_a_batch_study_whose_job_expired_reports_the_requests_sent_live_at_the_live_price(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    claude = f'model = "anthropic/claude-3-7-sonnet-latest"\nbase_url = "{faults.root_url}"\nbatch_poll_s = 0.01'
    db = tmp_path / "study.db"
    faults.openai_batch.expire_jobs = 1  # o3's first job (its own CoTs) expires: the unfinished requests go live
    summary = await run_study(parse_study(_study("batch", claude, faults.base_url, "partly-live")), db)
    expired = next(note for note in summary.notes if "expired" in note)
    went_live = int(expired.split(";")[1].split()[0])
    assert not summary.failures and went_live > 0 and faults.total == went_live
    results = ResultsDB(db)
    trials = [row for row in results.trials("partly-live") if row.evaluator == "o3"]
    cots = [row for row in results.explanations("partly-live") if row.source == "o3"]
    o3_rows: list[TrialRow | ExplanationRow] = [*trials, *cots]  # what the report counts as o3's
    live_rows = [row for row in o3_rows if row.live_completion_tokens]
    assert len(live_rows) == went_live
    assert all(row.live_completion_tokens == row.completion_tokens for row in live_rows)
    o3 = build_report(results, "partly-live").costs["o3"]
    batch, live = Price(input=1.0, output=4.0), Price(input=2.0, output=8.0)  # o3's bundled prices
    expected = sum(
        (row.prompt_tokens - row.live_prompt_tokens) * batch.input
        + (row.completion_tokens - row.live_completion_tokens) * batch.output
        + row.live_prompt_tokens * live.input
        + row.live_completion_tokens * live.output
        for row in o3_rows
    )
    assert o3["live"]["completion_tokens"] == sum(row.live_completion_tokens for row in live_rows) > 0
    assert o3["usd"] == pytest.approx(expected / 1e6)


def test_cotbridge_run_shows_a_line_for_the_batch_jobs(faults: FaultServer, keys: None, tmp_path: Path) -> None:
    claude = f'model = "anthropic/claude-3-7-sonnet-latest"\nbase_url = "{faults.root_url}"\nbatch_poll_s = 0.01'
    study = tmp_path / "batchy.toml"
    study.write_text(_study("batch", claude, faults.base_url), encoding="utf-8")
    env = {**os.environ, "OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET, "COLUMNS": "120"}
    shown = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "run", str(study)], capture_output=True, text=True, env=env, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    created = faults.openai_batch.created + faults.anthropic_batch.created
    line = next(line for line in shown.stdout.splitlines() if "batch jobs:" in line)
    assert f"batch jobs: {created} (" in line and "completed" in line and "requests" in line, line
    assert SECRET not in shown.stdout + shown.stderr


def test_switching_a_study_to_batch_mode_keeps_its_trials_fingerprints() -> None:
    """A batch job answers what a live call would: a study switched to batch mode redoes none of its trials."""
    live = parse_study(_study("live", 'model = "vllm/Qwen/QwQ-32B"'))
    batch = parse_study(_study("batch", 'model = "vllm/Qwen/QwQ-32B"'))
    problem = load_dataset("builtin:arithmetic", sample=1)[0]
    for config in (live, batch):
        assert config.models["o3"].batch == (config is batch)
    fingerprints = [
        trial_fingerprint(config, "o3", Variant.FULL, Condition.EMPTY, "", 0, problem) for config in (live, batch)
    ]
    assert fingerprints[0] == fingerprints[1]


async def test_a_batch_model_gets_a_phases_requests_in_one_job_whatever_its_concurrency(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    """The runner keeps a bounded number of a model's jobs in flight; for a batch model that bound is a job's size,
    not its endpoint's concurrency, or a phase would be cut into many small jobs (each waited for apart)."""
    study = f"""
[study]
name = "one-job"
dataset = "builtin:arithmetic"
sample = 12
conditions = ["empty"]
mode = "batch"

[study.decoding]
answer_max_tokens = 8

[models.o3]
model = "openai/o3"
base_url = "{faults.base_url}"
concurrency = 1
batch_poll_s = 0.01
"""
    summary = await run_study(parse_study(study), tmp_path / "one-job.db")
    assert not summary.failures and summary.trials == 12
    assert faults.openai_batch.created == 1 and faults.total == 0
