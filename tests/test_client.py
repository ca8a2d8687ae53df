"""The client without a server: Model and the request pipeline driven by a fake provider, and Bridge.model's identity
rules. Real-server behaviour is tested in test_llamacpp, test_faults and test_vllm."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cotbridge import Bridge, BridgeStats, BudgetExceeded, ConfigError, MalformedResponseError, ModelOptions, Price
from cotbridge.cache.inflight import SingleFlight
from cotbridge.cache.store import ResponseStore
from cotbridge.client import Model
from cotbridge.client.budget import Budget
from cotbridge.client.pipeline import RequestPipeline
from cotbridge.formats import FORMATS
from tests.fake_provider import FakeProvider
from tests.fault_server import FaultServer

ASK = [{"role": "user", "content": "What is 2 + 2?"}]


def fake_model(provider: FakeProvider, store: ResponseStore | None, **pipeline: object) -> Model:
    stats = BridgeStats()
    run = RequestPipeline(provider, store=store, inflight=SingleFlight(), stats=stats, **pipeline)  # type: ignore[arg-type]
    options = ModelOptions(price=pipeline.get("price"))  # type: ignore[arg-type]
    return Model(provider, run, options, FORMATS["think-tags"])


async def test_a_cached_answer_comes_back_without_the_provider(tmp_path: Path) -> None:
    provider = FakeProvider()
    store = ResponseStore(tmp_path / "c.db")
    model = fake_model(provider, store, budget=None, price=None)
    first = await model.chat(ASK, max_tokens=8)
    again = await model.chat(ASK, max_tokens=8)
    assert (first.text, first.cached, again.text, again.cached) == ("answer 1.0", False, "answer 1.0", True)
    assert len(provider.bodies) == 1 and model.stats.cache_hits == 1
    assert provider.bodies[0] == {"model": "m", "messages": ASK, "temperature": 0.0, "max_tokens": 8}
    store.close()


async def test_samples_are_rows_and_only_missing_ones_are_asked_for(tmp_path: Path) -> None:
    provider = FakeProvider()
    model = fake_model(provider, ResponseStore(tmp_path / "c.db"), budget=None, price=None)
    three = await model.chat(ASK, n=3, temperature=1.0)
    five = await model.chat(ASK, n=5, temperature=1.0)
    assert [c.text for c in five[:3]] == [c.text for c in three] and all(c.cached for c in five[:3])
    assert [b.get("n") for b in provider.bodies] == [3, 2], "a rerun asks only for the samples it lacks"
    assert sum(c.usage.completion_tokens for c in three) == 9, "a response's usage is shared out over its samples"


async def test_an_api_without_n_gets_one_request_per_sample() -> None:
    provider = FakeProvider(n_samples=False)
    model = fake_model(provider, None, budget=None, price=None)
    samples = await model.chat(ASK, n=3, temperature=1.0)
    assert len(samples) == 3 and len(provider.bodies) == 3 and all("n" not in b for b in provider.bodies)


async def test_identical_requests_in_flight_share_one_call(tmp_path: Path) -> None:
    provider = FakeProvider(delay_s=0.05)
    model = fake_model(provider, ResponseStore(tmp_path / "c.db"), budget=None, price=None)
    answers = await asyncio.gather(*(model.chat(ASK) for _ in range(4)))
    assert len(provider.bodies) == 1 and model.stats.deduplicated == 3
    assert len({a.text for a in answers}) == 1 and sum(not a.cached for a in answers) == 1


async def test_inline_thinking_is_split_and_a_prefill_gets_the_dialect_fields() -> None:
    class Continuing(FakeProvider):
        def prefill_fields(self) -> dict[str, object]:
            return {"continue_final_message": True}

    provider = Continuing(reply="<think>\nadd\n</think>\n4")
    model = fake_model(provider, None, budget=None, price=None)
    reply = await model.chat(ASK)
    assert (reply.reasoning, reply.text) == ("add", "4 1.0") and "continue_final_message" not in provider.bodies[0]
    provider.reply = "add\n</think>\n4"  # a server continues the prefill: no opening tag of its own
    prefilled = await model.chat([*ASK, {"role": "assistant", "content": "<think>\nI "}])
    assert provider.bodies[1]["continue_final_message"] is True
    assert (prefilled.reasoning, prefilled.text) == ("I add", "4 2.0"), "the prefill's open thought is reasoning"


async def test_a_budget_refuses_before_sending() -> None:
    provider = FakeProvider()
    price = Price(input=1.0, output=1000.0)  # $0.001 per output token
    model = fake_model(provider, None, budget=Budget(0.05), price=price)
    await model.chat(ASK, max_tokens=10)  # worst case $0.01: sent
    with pytest.raises(BudgetExceeded, match="budget"):
        await model.chat([{"role": "user", "content": "again"}], max_tokens=100)  # worst case $0.10
    assert len(provider.bodies) == 1


async def test_a_response_with_too_few_choices_is_malformed() -> None:
    class OneChoice(FakeProvider):
        def chat(self, body: dict[str, object]) -> object:
            return self._respond({k: v for k, v in body.items() if k != "n"}, chat=True)

    model = fake_model(OneChoice(), None, budget=None, price=None)
    with pytest.raises(MalformedResponseError, match="asked for 2 choice"):
        await model.chat(ASK, n=2, temperature=1.0)


async def test_bridge_model_is_one_model_per_distinct_options() -> None:
    url = "http://127.0.0.1:9/v1"  # no request is sent
    async with Bridge() as bridge:
        cheap = bridge.model("openai-compatible/x", base_url=url, price=Price(input=1, output=2))
        dear = bridge.model("openai-compatible/x", base_url=url, price=Price(input=5, output=9))
        assert cheap is not dear and (cheap.price, dear.price) == (Price(input=1, output=2), Price(input=5, output=9))
        slow = bridge.model("openai-compatible/x", base_url=url, rpm=10)
        fast = bridge.model("openai-compatible/x", base_url=url, rpm=20)
        assert slow is not fast and slow is bridge.model("openai-compatible/x", base_url=url, rpm=10)
        ab = bridge.model("openai-compatible/x", base_url=url, extra_body={"a": 1, "b": {"c": 2, "d": 3}})
        ba = bridge.model("openai-compatible/x", base_url=url, extra_body={"b": {"d": 3, "c": 2}, "a": 1})
        assert ab is ba, "extra_body dicts equal as dicts are one Model"
        assert bridge.model("openai-compatible/x", base_url=url, options=ModelOptions(rpm=10)) is slow
        assert cheap.provider is dear.provider is ab.provider, "one server connection for all of them"


async def test_bridge_refuses_what_it_cannot_honour() -> None:
    url = "http://127.0.0.1:9/v1"
    async with Bridge() as bridge:
        bridge.model("openai-compatible/x", base_url=url, max_concurrency=4)
        with pytest.raises(ConfigError, match="max_concurrency 8 \\(it has 4\\)"):
            bridge.model("openai-compatible/y", base_url=url, max_concurrency=8)
        with pytest.raises(ConfigError, match="rpm"):
            bridge.model("openai-compatible/x", base_url=url, rpm=0)
        with pytest.raises(ConfigError, match="unknown field"):
            bridge.model("openai-compatible/x", base_url=url, rmp=10)
        with pytest.raises(ConfigError, match="unknown thinking format"):
            bridge.model("openai-compatible/x", base_url=url, thinking_format="thoughts")


async def test_closing_one_provider_leaves_the_shared_endpoint_to_the_bridge(faults: FaultServer) -> None:
    faults.slow_s = 0.5
    async with Bridge() as bridge:
        ok = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        slow = bridge.model("openai-compatible/slow", base_url=faults.base_url)
        in_flight = asyncio.ensure_future(slow.chat(ASK))
        await asyncio.sleep(0.1)
        await ok.provider.aclose()  # what one model's own cleanup may do
        assert (await in_flight).text and (bridge.stats.retries, bridge.stats.errors) == (0, 0), (
            "the other model's request on the shared connection must go on untouched"
        )
    faults.slow_s = 0.05


async def test_request_bodies_reach_the_server_as_sent_whatever_their_text(faults: FaultServer) -> None:
    # Bodies are encoded by pydantic-core (compact UTF-8); a lone surrogate, which it refuses, falls back to the
    # standard library's escapes: both arrive as the same JSON values.
    texts = ["What is 2 + 2? é ✓ 𝄞", "half a pair: \ud800"]
    async with Bridge(cache=None) as bridge:
        model = bridge.model("openai-compatible/m", base_url=faults.base_url)
        before = len(faults.bodies)
        for text in texts:
            assert (await model.chat([{"role": "user", "content": text}], temperature=0.5)).text
    sent = faults.bodies[before:]
    assert [body["messages"][0]["content"] for body in sent] == texts
    assert faults.content_types[before:] == ["application/json"] * len(texts)  # (servers parse JSON by it)
    assert all(body["temperature"] == 0.5 and body["model"] == "m" for body in sent)
