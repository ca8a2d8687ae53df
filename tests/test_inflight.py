"""In-flight sharing (`SingleFlight`): a shared call lives while any caller still waits for it (started again for the
others when the caller running it leaves), and neither its result's absence nor its failure is remembered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cotbridge.cache.inflight import SingleFlight
from cotbridge.cache.store import ResponseStore
from cotbridge.records import Completion
from tests.fake_provider import FakeProvider
from tests.test_client import ASK, fake_model

# One sample that missed the cache takes the lean path (`RequestPipeline._fetch_one`); several go through `results`
# and `SingleFlight.run`. Both must share calls alike.
PATHS = pytest.mark.parametrize("samples", [1, 2], ids=["lean path", "results path"])


def _texts(answer: Completion | list[Completion]) -> list[str]:
    return [a.text for a in (answer if isinstance(answer, list) else [answer])]


def _cached(answer: Completion | list[Completion]) -> bool:
    return all(a.cached for a in (answer if isinstance(answer, list) else [answer]))


@PATHS
async def test_a_caller_that_gives_up_hands_the_shared_request_over_to_the_others(tmp_path: Path, samples: int) -> None:
    provider = FakeProvider(delay_s=0.3)
    model = fake_model(provider, ResponseStore(tmp_path / "c.db"), budget=None, price=None)
    impatient = asyncio.ensure_future(asyncio.wait_for(model.chat(ASK, n=samples), 0.05))
    await asyncio.sleep(0)
    patient = asyncio.ensure_future(model.chat(ASK, n=samples))
    with pytest.raises(TimeoutError):
        await impatient
    answer = await patient
    # The request ran in the impatient caller's task and left with it: it is sent again for the patient one.
    assert _texts(answer)[0] == "answer 2.0" and len(provider.bodies) == 2
    assert _cached(await model.chat(ASK, n=samples)), "the patient caller's response was stored"


@PATHS
async def test_identical_requests_in_flight_share_one_call_and_its_failure(tmp_path: Path, samples: int) -> None:
    provider = FakeProvider(delay_s=0.05)
    model = fake_model(provider, ResponseStore(tmp_path / "c.db"), budget=None, price=None)
    answers = await asyncio.gather(*(model.chat(ASK, n=samples) for _ in range(4)))
    assert len(provider.bodies) == 1 and model.stats.deduplicated == 3
    assert len({tuple(_texts(a)) for a in answers}) == 1 and [_cached(a) for a in answers] == [False] + [True] * 3

    class Failing(FakeProvider):
        async def _respond(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
            self.bodies.append(body)
            await asyncio.sleep(0.05)
            raise ConnectionError("the server went away")

    failing = Failing()
    model = fake_model(failing, ResponseStore(tmp_path / "f.db"), budget=None, price=None)
    results = await asyncio.gather(*(model.chat(ASK, n=samples) for _ in range(3)), return_exceptions=True)
    assert len(failing.bodies) == 1 and all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await model.chat(ASK, n=samples)
    assert len(failing.bodies) == 2, "a failure is not remembered: the next caller asks again"


class CountedCall:
    """A call that returns `value` after `delay_s`, counting how often it started and how often it was cancelled."""

    def __init__(self, delay_s: float, value: int = 1) -> None:
        self.delay_s, self.value = delay_s, value
        self.started = self.cancelled = 0

    async def __call__(self) -> int:
        self.started += 1
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.value


async def test_the_first_caller_waiting_on_leaves_a_joiner_that_gave_up_harmless() -> None:
    flight: SingleFlight[int] = SingleFlight()
    call = CountedCall(0.1, value=7)
    first = asyncio.ensure_future(flight.run("k", call))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flight.run("k", call), 0.01)
    assert await first == (7, False) and call.started == 1 and len(flight) == 0


async def test_the_call_is_cancelled_when_its_last_caller_leaves() -> None:
    flight: SingleFlight[int] = SingleFlight()
    call = CountedCall(10)
    callers = [asyncio.ensure_future(flight.run("k", call)) for _ in range(2)]
    await asyncio.sleep(0.01)
    callers[0].cancel()
    await asyncio.sleep(0.01)
    assert (call.started, call.cancelled) == (2, 1), "the first caller's call left with it; the other runs it anew"
    callers[1].cancel()
    await asyncio.sleep(0.01)
    assert (call.started, call.cancelled) == (2, 2) and len(flight) == 0


async def test_callers_cancelled_together_start_nothing_again() -> None:
    """A failed study cancels all its tasks at once: the shared call must not be sent again for callers leaving too."""
    flight: SingleFlight[int] = SingleFlight()
    call = CountedCall(10)
    callers = [asyncio.ensure_future(flight.run("k", call)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for caller in callers:
        caller.cancel()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert call.started == 1 and len(flight) == 0


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
