"""In-flight sharing (`SingleFlight`): a shared call lives while any caller still waits for it, and neither its
result's absence nor its failure is remembered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cotbridge.cache import ResponseStore, SingleFlight
from tests.fake_provider import FakeProvider
from tests.test_client import ASK, fake_model


async def test_a_caller_that_gives_up_leaves_the_shared_request_to_the_others(tmp_path: Path) -> None:
    provider = FakeProvider(delay_s=0.3)
    model = fake_model(provider, ResponseStore(tmp_path / "c.db"), budget=None, price=None)
    impatient = asyncio.ensure_future(asyncio.wait_for(model.chat(ASK), 0.05))
    await asyncio.sleep(0)
    patient = asyncio.ensure_future(model.chat(ASK))
    with pytest.raises(TimeoutError):
        await impatient
    answer = await patient
    assert answer.text == "answer 1.0" and len(provider.bodies) == 1
    assert (await model.chat(ASK)).cached, "the shared response was stored although its first caller left"


async def test_the_first_caller_waiting_on_leaves_a_joiner_that_gave_up_harmless() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started = 0

    async def call() -> int:
        nonlocal started
        started += 1
        await asyncio.sleep(0.1)
        return 7

    first = asyncio.ensure_future(flight.run("k", call))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flight.run("k", call), 0.01)
    assert await first == (7, False) and started == 1 and len(flight) == 0


async def test_the_call_is_cancelled_when_its_last_caller_leaves() -> None:
    flight: SingleFlight[int] = SingleFlight()
    cancelled = asyncio.Event()

    async def call() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    callers = [asyncio.ensure_future(flight.run("k", call)) for _ in range(2)]
    await asyncio.sleep(0.01)
    callers[0].cancel()
    await asyncio.sleep(0.01)
    assert not cancelled.is_set(), "one caller still waits"
    callers[1].cancel()
    await asyncio.wait_for(cancelled.wait(), 1)
    assert len(flight) == 0


async def test_a_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise ValueError("boom")

    results = await asyncio.gather(*(flight.run("k", failing) for _ in range(3)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, ValueError) for r in results)
    assert len(flight) == 0

    async def works() -> int:
        return 3

    assert await flight.run("k", works) == (3, False), "the next caller tries again"


async def test_a_new_caller_after_the_last_one_left_starts_a_new_call() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flight.run("k", call), 0.01)
    assert await flight.run("k", call) == (2, False)
