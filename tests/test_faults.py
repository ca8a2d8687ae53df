"""Retries, timeouts and error messages against a purpose-built misbehaving server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cotbridge import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    Bridge,
    ConfigError,
    MalformedResponseError,
    RetryPolicy,
    UnsupportedOperation,
)
from cotbridge.providers.openai_compat import OpenAICompatProvider
from tests.conftest import capped_endpoint
from tests.fault_server import FaultServer

FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait_s=0.05, max_wait_s=0.2, jitter_s=0.01)
ASK = [{"role": "user", "content": "hi"}]


async def test_429_waits_for_retry_after(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        m = bridge.model("openai-compatible/rate-limited", base_url=faults.base_url)
        start = time.perf_counter()
        c = await m.chat(ASK)
        elapsed = time.perf_counter() - start
    assert c.text.startswith("answer")
    assert elapsed >= 1.0, "retried sooner than Retry-After: 1"
    assert faults.requests["rate-limited"] == 2
    assert bridge.stats.retries == 1


async def test_500_then_success(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        c = await bridge.model("openai-compatible/flaky-500", base_url=faults.base_url).chat(ASK)
    assert c.text.startswith("answer") and faults.requests["flaky-500"] == 2


async def test_connection_reset_is_retried(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        c = await bridge.model("openai-compatible/reset", base_url=faults.base_url).chat(ASK)
    assert c.text.startswith("answer") and faults.requests["reset"] == 2


async def test_400_is_not_retried_and_names_model_endpoint_status(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        m = bridge.model("openai-compatible/bad-request", base_url=faults.base_url, api_key="sk-never-show-me")
        with pytest.raises(APIStatusError) as info:
            await m.chat(ASK)
    message = str(info.value)
    assert faults.requests["bad-request"] == 1
    assert info.value.status == 400
    assert "openai-compatible/bad-request" in message and faults.base_url in message and "HTTP 400" in message
    # The server echoed our Authorization header; the error must not carry the key.
    assert "sk-never-show-me" not in message and "sk-never-show-me" not in repr(info.value.args)


async def test_malformed_json_fails_after_retries(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        with pytest.raises(MalformedResponseError) as info:
            await bridge.model("openai-compatible/malformed", base_url=faults.base_url).chat(ASK)
    assert faults.requests["malformed"] == 3
    assert "not valid JSON" in str(info.value) and "after 3 attempts" in str(info.value)


async def test_hang_past_timeout(faults: FaultServer) -> None:
    async with Bridge(retry=RetryPolicy(max_attempts=2, initial_wait_s=0.01), timeout_s=0.3) as bridge:
        start = time.perf_counter()
        with pytest.raises(APITimeoutError) as info:
            await bridge.model("openai-compatible/hang", base_url=faults.base_url).chat(ASK)
    assert time.perf_counter() - start < 5
    assert faults.requests["hang"] == 2
    assert "0.3 s" in str(info.value)


async def test_unreachable_server() -> None:
    async with Bridge(retry=RetryPolicy(max_attempts=2, initial_wait_s=0.01)) as bridge:
        with pytest.raises(APIConnectionError) as info:
            await bridge.model("vllm/x", base_url="http://127.0.0.1:9/v1").chat(ASK)
    assert "vllm/x at http://127.0.0.1:9/v1" in str(info.value)


async def test_in_flight_requests_are_bounded(faults: FaultServer) -> None:
    async with Bridge() as bridge:
        m = bridge.model("openai-compatible/slow", base_url=faults.base_url, max_concurrency=4)
        await asyncio.gather(*(m.chat([{"role": "user", "content": str(i)}]) for i in range(24)))
    assert faults.requests["slow"] == 24
    assert faults.max_in_flight["slow"] == 4


async def test_generic_server_says_it_cannot_score(faults: FaultServer) -> None:
    async with Bridge() as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        with pytest.raises(UnsupportedOperation, match="cannot score a continuation"):
            await m.score("The sky is", " blue.")
        with pytest.raises(UnsupportedOperation, match="rendered text"):
            await m.score(ASK, "x")


async def test_bad_input_is_named() -> None:
    async with Bridge() as bridge:
        with pytest.raises(ConfigError, match="provider/model-id"):
            bridge.model("smollm2")
        with pytest.raises(ConfigError, match="unknown provider 'nope'"):
            bridge.model("nope/x")
        with pytest.raises(ConfigError, match="COTBRIDGE_OPENAI_COMPATIBLE_BASE_URL"):
            bridge.model("openai-compatible/x")
        with pytest.raises(ConfigError, match="unknown local model"):
            bridge.model("local/gpt-7")
        m = bridge.model("vllm/x", base_url="http://127.0.0.1:9/v1")
        with pytest.raises(ConfigError, match=r"messages\[0\]\['role'\]"):
            await m.chat([{"role": "robot", "content": "x"}])
        with pytest.raises(ConfigError, match="API_KEY_THAT_IS_NOT_SET"):
            bridge.model("vllm/y", base_url="http://127.0.0.1:9/v1", api_key_env="API_KEY_THAT_IS_NOT_SET")


async def test_base_url_and_key_from_environment(faults: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTBRIDGE_OPENAI_COMPATIBLE_BASE_URL", faults.base_url)
    monkeypatch.setenv("COTBRIDGE_OPENAI_COMPATIBLE_API_KEY", "sk-from-env")
    async with Bridge() as bridge:
        await bridge.model("openai-compatible/ok").chat(ASK)
    assert faults.auth_headers[-1] == "Bearer sk-from-env"


async def test_extra_body_of_a_model_reaches_every_request(faults: FaultServer) -> None:
    from cotbridge.study import parse_study

    config = parse_study(
        '[study]\nname = "x"\ndataset = "builtin:arithmetic"\nconditions = ["empty"]\n'
        f'[models.a]\nmodel = "openai-compatible/ok"\nbase_url = "{faults.base_url}"\n'
        "extra_body = { cache_prompt = false, top_k = 5 }\n"
    )
    assert config.models["a"].extra_body == {"cache_prompt": False, "top_k": 5}
    async with Bridge() as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url, extra_body={"top_k": 5})
        await m.chat(ASK)
        await m.complete("Once", max_tokens=2)
    assert all(body["top_k"] == 5 for body in faults.bodies)


@pytest.mark.parametrize("asked", ["day", "date"])
async def test_a_wait_past_max_retry_after_fails_at_once_and_pauses_nothing(faults: FaultServer, asked: str) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        m = bridge.model(f"openai-compatible/retry-after-{asked}", base_url=faults.base_url)
        with pytest.raises(APIStatusError) as info:
            await asyncio.wait_for(m.chat(ASK), 5)
        started = time.perf_counter()
        await asyncio.wait_for(bridge.model("openai-compatible/ok", base_url=faults.base_url).chat(ASK), 5)
    assert time.perf_counter() - started < 2, "the endpoint stayed paused"
    assert info.value.status == 429 and faults.requests[f"retry-after-{asked}"] == 1
    assert "more than max_retry_after_s = 300" in str(info.value)
    assert "retry after 8640" in str(info.value) if asked == "day" else "retry after 86" in str(info.value)


async def test_retry_after_inf_is_no_wait(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        c = await asyncio.wait_for(
            bridge.model("openai-compatible/retry-after-inf", base_url=faults.base_url).chat(ASK), 5
        )
        await asyncio.wait_for(bridge.model("openai-compatible/ok", base_url=faults.base_url).chat(ASK), 2)
    assert c.text.startswith("answer") and faults.requests["retry-after-inf"] == 2


async def test_no_quota_fails_at_once(faults: FaultServer) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        with pytest.raises(APIStatusError, match="account has no quota") as info:
            await bridge.model("openai-compatible/no-quota", base_url=faults.base_url).chat(ASK)
    assert info.value.status == 429 and faults.requests["no-quota"] == 1


async def test_no_quota_through_the_openai_sdk_fails_at_once(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-quota-test")
    async with Bridge(retry=FAST_RETRY) as bridge:
        with pytest.raises(APIStatusError, match="account has no quota") as info:
            await bridge.model("openai/no-quota", base_url=faults.base_url).chat(ASK)
    assert info.value.status == 429 and faults.requests["no-quota"] == 1
    assert "sk-quota-test" not in str(info.value)


async def test_a_redirect_is_not_followed(faults: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-redirect-test")
    async with Bridge(retry=FAST_RETRY) as bridge:
        for model in ("openai-compatible/redirect", "openai/redirect"):
            with pytest.raises(APIStatusError, match="redirects to .*/redirected") as info:
                await bridge.model(model, base_url=faults.base_url).chat(ASK)
            assert info.value.status == 302
    assert faults.redirect_gets == 0 and faults.requests["redirect"] == 2


async def test_a_response_over_the_size_cap_fails_at_once(faults: FaultServer) -> None:
    endpoint = capped_endpoint(faults.base_url)
    provider = OpenAICompatProvider("openai-compatible/huge", "huge", endpoint)
    try:
        with pytest.raises(MalformedResponseError, match="more than max_response_bytes = 1,048,576"):
            await provider.chat({"model": "huge", "messages": ASK})
        assert faults.requests["huge"] == 1
        assert (await provider.chat({"model": "ok", "messages": ASK}))["choices"]  # the endpoint still works
    finally:
        await endpoint.aclose()


@pytest.mark.parametrize("model", ["body-null", "choices-strings", "usage-many"])
async def test_a_malformed_200_fails_that_request_only(faults: FaultServer, model: str) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        bad, ok = await asyncio.gather(
            bridge.model(f"openai-compatible/{model}", base_url=faults.base_url).chat(ASK),
            bridge.model("openai-compatible/ok", base_url=faults.base_url).chat(ASK),
            return_exceptions=True,
        )
    assert isinstance(bad, MalformedResponseError), repr(bad)
    assert "is not a chat completion" in str(bad) and "after 3 attempts" in str(bad)  # retried like non-JSON
    assert not isinstance(ok, BaseException) and ok.text.startswith("answer")


async def test_content_parts_are_joined_and_lone_surrogates_replaced(faults: FaultServer, tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    for _ in range(2):  # fresh from the server, then from the cache
        async with Bridge(cache=db, retry=FAST_RETRY) as bridge:
            parts = await bridge.model("openai-compatible/content-parts", base_url=faults.base_url).chat(ASK)
            surrogate = await bridge.model("openai-compatible/lone-surrogate", base_url=faults.base_url).chat(ASK)
        assert parts.text.startswith("answer") and parts.text.endswith("#0!")
        assert surrogate.text == "half \ufffd"
    assert faults.requests["content-parts"] == 1 and faults.requests["lone-surrogate"] == 1
