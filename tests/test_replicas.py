"""Replicas: one model's base_url as a list of servers, on real fault servers and real SQLite files."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError
from cotbridge.cache.keys import request_key
from cotbridge.options import RetryPolicy
from cotbridge.providers.replicas import REPLICAS_ID
from cotbridge.providers.transport import public_url
from cotbridge.study import parse_study, run_study
from cotbridge.study.runner import stored_config
from tests.fault_server import FaultServer, closed_port_url

QUICK = RetryPolicy(max_attempts=3, initial_wait_s=0.05, jitter_s=0.0)
ASK = [{"role": "user", "content": "2+2?"}]


@pytest.fixture()
def pair() -> Iterator[tuple[FaultServer, FaultServer]]:
    servers = (FaultServer(slow_s=0.2).start(), FaultServer(slow_s=0.2).start())
    yield servers
    for server in servers:
        server.stop()


async def test_requests_go_to_the_replica_with_fewest_outstanding(pair: tuple[FaultServer, FaultServer]) -> None:
    a, b = pair
    async with Bridge(cache=None, retry=QUICK) as bridge:
        model = bridge.model("openai-compatible/slow", base_url=[a.base_url, b.base_url])
        await asyncio.gather(*(model.chat(ASK, max_tokens=4, seed=i) for i in range(10)))
    # Sent at once, each request goes where fewer are waiting: an even split.
    assert (a.requests["slow"], b.requests["slow"]) == (5, 5)
    assert max(a.max_in_flight["slow"], b.max_in_flight["slow"]) == 5


@pytest.mark.parametrize("failure", ["closed port", "503"])
async def test_a_failing_replica_is_taken_out_and_its_requests_succeed_on_another(
    pair: tuple[FaultServer, FaultServer], failure: str
) -> None:
    a, b = pair
    if failure == "503":
        a.unavailable = True
        bad = a.base_url
    else:
        bad = closed_port_url()
    async with Bridge(cache=None, retry=QUICK) as bridge:
        model = bridge.model("openai-compatible/ok", base_url=[bad, b.base_url])
        replies = [await model.chat(ASK, max_tokens=4, seed=i) for i in range(6)]
        replicas = model.provider.endpoint
        assert replicas.live() == 1, "the failing replica is out for its cool-down"
        assert bridge.stats.errors == 0
    assert all(r.text for r in replies)
    assert b.requests["ok"] == 6
    # Tried once, then out: the other five never went to it.
    assert a.requests["ok"] == (1 if failure == "503" else 0)


async def test_every_replica_down_fails_after_max_attempts(pair: tuple[FaultServer, FaultServer]) -> None:
    a, b = pair
    a.unavailable = b.unavailable = True
    async with Bridge(cache=None, retry=QUICK) as bridge:
        model = bridge.model("openai-compatible/ok", base_url=[a.base_url, b.base_url])
        with pytest.raises(Exception) as raised:
            await model.chat(ASK, max_tokens=4)
    assert getattr(raised.value, "attempts", None) == 3
    assert getattr(raised.value, "status", None) == 503
    assert a.requests["ok"] + b.requests["ok"] == 3


async def test_a_rerun_on_other_replicas_is_served_from_the_cache(
    pair: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = pair
    c = FaultServer().start()
    db = tmp_path / "cache.db"
    try:
        async with Bridge(cache=db, retry=QUICK) as bridge:
            first = await bridge.model("openai-compatible/ok", base_url=[a.base_url, b.base_url]).chat(ASK, seed=1)
            await bridge.model("openai-compatible/ok", base_url=a.base_url).chat(ASK, seed=2)
        async with Bridge(cache=db, retry=QUICK) as bridge:
            again = await bridge.model("openai-compatible/ok", base_url=[c.base_url]).chat(ASK, seed=1)
            other = await bridge.model("openai-compatible/ok", base_url=[c.base_url, b.base_url]).chat(ASK, seed=1)
    finally:
        c.stop()
    assert c.total == 0, "a list of replicas, even of one, is served from what other replicas answered"
    assert again.cached and other.cached and again.text == other.text == first.text
    rows = sqlite3.connect(db).execute("SELECT key, endpoint, request FROM responses").fetchall()
    assert sorted(row[1] for row in rows) == sorted([REPLICAS_ID, public_url(a.base_url)])
    # A single-URL model's key follows the old rule: the URL is its endpoint identity.
    key, endpoint, request = next(row for row in rows if row[1] != REPLICAS_ID)
    assert endpoint == public_url(a.base_url)
    old_rule = request_key(
        op="chat", provider="openai-compatible", endpoint=public_url(a.base_url), model="ok", body=json.loads(request)
    )
    assert key == old_rule


def test_base_url_lists_are_checked_naming_the_model_and_the_url() -> None:
    async def open_model(urls: list[str]) -> None:
        async with Bridge(cache=None) as bridge:
            bridge.model("vllm/m", base_url=urls)

    with pytest.raises(ConfigError, match=r"vllm/m(.|\n)*'ftp://b/v1' must start with http"):
        asyncio.run(open_model(["http://a/v1", "ftp://b/v1"]))
    with pytest.raises(ConfigError, match="empty list"):
        asyncio.run(open_model([]))
    with pytest.raises(ConfigError, match="twice"):
        asyncio.run(open_model(["http://a/v1", "http://a/v1"]))


STUDY = """
[study]
name = "replicas"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty"]

[study.retry]
max_attempts = 2
initial_wait_s = 0.05

[models.a]
model = "openai-compatible/ok"
base_url = ["{a}", "{b}"]
generator = false
"""


async def test_a_study_with_replicas_runs_and_stores_no_credentials(
    pair: tuple[FaultServer, FaultServer], tmp_path: Path
) -> None:
    a, b = pair
    secret_a = a.base_url.replace("http://", "http://user:hunter2@")
    config = parse_study(STUDY.format(a=secret_a, b=b.base_url))
    stored = stored_config(config)
    assert stored["models"]["a"]["base_url"] == [a.base_url, b.base_url]
    assert "hunter2" not in json.dumps(stored)
    db = tmp_path / "r.db"
    summary = await run_study(config, db)
    assert summary.trials == 2 and summary.failed_trials == 0
    assert a.requests["ok"] + b.requests["ok"] == 2
    assert "hunter2" not in db.read_bytes().decode("latin-1")


def test_models_check_shows_each_replica(pair: tuple[FaultServer, FaultServer]) -> None:
    a, _ = pair
    dead = closed_port_url()
    cli = [sys.executable, "-m", "cotbridge.cli", "models", "check", "openai-compatible/ok"]
    result = subprocess.run(
        [*cli, "--base-url", a.base_url, "--base-url", dead, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )
    out = result.stdout
    assert f"openai-compatible/ok @ {a.base_url}" in out.replace("\n", "")
    assert f"@ {dead}" in out.replace("\n", "") or dead.split(":")[-1].split("/")[0] in out
    assert "ok" in out and "down" in out
    assert result.returncode == 1  # one replica is down
