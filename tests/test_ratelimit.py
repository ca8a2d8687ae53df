"""Rate limits: requests and tokens per window, and a 429 that pauses the whole endpoint."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from cotbridge import Bridge, RetryPolicy
from cotbridge.providers.ratelimit import RateLimiter, estimate_tokens, limit_wait_s, parse_reset, retry_wait_s
from tests.fault_server import FaultServer


async def test_requests_per_window() -> None:
    limiter = RateLimiter(rpm=2, window_s=0.4)
    start = time.perf_counter()
    for _ in range(5):
        await limiter.acquire()
    # 2 now, 2 after one window, 1 after two windows.
    assert 0.8 <= time.perf_counter() - start < 1.5


async def test_tokens_per_window_and_a_request_larger_than_the_limit() -> None:
    limiter = RateLimiter(tpm=100, window_s=0.3)
    start = time.perf_counter()
    await limiter.acquire(60)
    await limiter.acquire(60)  # waits for the first to leave the window
    assert time.perf_counter() - start >= 0.29
    await asyncio.wait_for(limiter.acquire(500), timeout=1.0)  # alone in its window: goes out


def test_token_estimate() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50, "n": 2}
    assert estimate_tokens(body) == 100 + 100


async def test_a_429_pauses_every_request_to_the_endpoint(faults: FaultServer) -> None:
    async with Bridge(retry=RetryPolicy(max_attempts=3, initial_wait_s=0.05)) as bridge:
        limited = bridge.model("openai-compatible/rate-limited", base_url=faults.base_url)
        ok = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        first = asyncio.create_task(limited.chat([{"role": "user", "content": "a"}]))
        while faults.requests["rate-limited"] == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the 429 (Retry-After: 1) has arrived
        start = time.perf_counter()
        await ok.chat([{"role": "user", "content": "b"}])
        waited = time.perf_counter() - start
        await first
    assert waited >= 0.8, "a request sent during the pause must wait for it"


async def test_rpm_from_the_model_reaches_its_requests(faults: FaultServer) -> None:
    async with Bridge() as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url, rpm=600, tpm=10_000)
        limiter = m._pipeline.limiter
        assert limiter is not None and (limiter.rpm, limiter.tpm) == (600, 10_000)
        await asyncio.gather(*(m.chat([{"role": "user", "content": str(i)}]) for i in range(5)))
    assert faults.requests["ok"] == 5


def test_provider_reset_headers_in_every_documented_form() -> None:
    now = 1_800_000_000.0
    assert parse_reset("6m0s", now) == 360.0 and parse_reset("12ms", now) == pytest.approx(0.012)
    assert parse_reset("1h2m3.5s", now) == pytest.approx(3723.5)
    assert parse_reset("20", now) == 20.0  # seconds
    assert parse_reset(str(now + 30), now) == pytest.approx(30.0)  # epoch seconds
    assert parse_reset(str(int((now + 5) * 1000)), now) == pytest.approx(5.0)  # epoch ms (OpenRouter)
    rfc3339 = datetime.fromtimestamp(now + 90, UTC).isoformat().replace("+00:00", "Z")
    assert parse_reset(rfc3339, now) == pytest.approx(90.0)  # Anthropic
    assert parse_reset("soon", now) is None and parse_reset(None, now) is None


def test_waits_from_rate_limit_headers() -> None:
    openai_used_up = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "7s",
    }
    assert limit_wait_s(openai_used_up) == 7.0  # the later of two used-up limits
    assert limit_wait_s({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "2s"}) is None
    assert retry_wait_s({"retry-after": "4", **openai_used_up}) == 4.0  # Retry-After wins
    assert retry_wait_s({"retry-after-ms": "250"}) == 0.25
    assert retry_wait_s(openai_used_up) == 7.0 and retry_wait_s({}) is None
