"""OpenAI (openai SDK, Responses API), Anthropic and Gemini (litellm): request shaping and response parsing.

The hosted APIs cannot be reached from here. The SDKs talk HTTP to a local server that records what it receives
and answers in each API's documented wire format (tests/fault_server.py); the SDKs themselves are real.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, RetryPolicy, load_dataset
from cotbridge.cot import transfer
from cotbridge.errors import APIStatusError, APITimeoutError, MalformedResponseError, UnsupportedOperation
from cotbridge.providers.openai_responses import chat_shape, responses_request
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET
from cotbridge.study import parse_study, run_study
from tests.fault_server import REASONING, FaultServer
from tests.imitations.openai_responses import responses_answer

if importlib.util.find_spec("litellm") is None:  # found, not imported: cotbridge sets litellm up before import
    pytest.skip("anthropic/ and gemini/ need the extra `hosted` (pip install -e '.[hosted]')", allow_module_level=True)

PROBLEM = load_dataset("builtin:arithmetic")[0]
SECRET = "sk-sdk-test-5d1e77"
ASK = [{"role": "user", "content": "What is 17 + 25?"}]
FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait_s=0.05, jitter_s=0.0)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY"):
        monkeypatch.setenv(var, SECRET)


def test_responses_request_and_answer_translation() -> None:
    body = {"model": "o3", "messages": ASK, "temperature": 0.7, "seed": 1, "max_tokens": 100}
    with pytest.raises(ValueError, match="'stop'"):
        responses_request({**body, "stop": ["\n"]}, reasoning_model=False)
    request = responses_request({**body, "reasoning_effort": "high"}, reasoning_model=True)
    assert request == {
        "model": "o3",
        "input": ASK,
        "store": False,
        "max_output_tokens": 100 + DEFAULT_THINKING_BUDGET,
        "reasoning": {"summary": "auto", "effort": "high"},
    }
    plain = responses_request({**body, "logprobs": True, "top_logprobs": 2}, reasoning_model=False)
    assert plain["temperature"] == 0.7 and plain["max_output_tokens"] == 100 and "reasoning" not in plain
    assert "seed" not in plain  # no Responses counterpart; the cache keeps reruns identical
    assert plain["include"] == ["message.output_text.logprobs"] and plain["top_logprobs"] == 2
    raw = responses_answer({"model": "o3", "reasoning": {"summary": "auto"}})
    shaped = chat_shape(raw)
    message = shaped["choices"][0]["message"]
    assert message["reasoning"] == REASONING and message["content"].startswith("answer ")
    assert shaped["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 32},
    }
    assert shaped["response"] == raw  # the raw answer is what the cache keeps
    cut = chat_shape({**raw, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}})
    assert cut["choices"][0]["finish_reason"] == "length"
    with pytest.raises(ValueError, match="no 'output'"):
        chat_shape({"id": "x"})


async def test_openai_reasoning_model_through_the_responses_api(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        o3 = bridge.model("openai/o3", base_url=faults.base_url)
        c = await o3.chat(ASK, temperature=0.7, max_tokens=64)
        samples = await o3.chat(ASK, temperature=0.7, max_tokens=64, n=3)
        e = await transfer.explain(o3, PROBLEM)
    assert (c.reasoning, c.usage.reasoning_tokens, c.usage.completion_tokens) == (REASONING, 32, 40)
    sent = faults.bodies[0]
    assert "temperature" not in sent and sent["max_output_tokens"] == 64 + DEFAULT_THINKING_BUDGET
    assert sent["reasoning"] == {"summary": "auto"} and sent["input"] == ASK and sent["store"] is False
    assert "n" not in faults.bodies[1] and len(samples) == 3  # one request per sample: Responses has no n
    assert o3.capabilities.reasoning_visibility == "summary" and e.cot == REASONING
    assert set(faults.auth_headers) == {f"Bearer {SECRET}"}
    requests = faults.total
    async with Bridge(cache=tmp_path / "c.db") as bridge:  # everything again, from the cache
        o3 = bridge.model("openai/o3", base_url=faults.base_url)
        again = await o3.chat(ASK, temperature=0.7, max_tokens=64, n=3)
    assert faults.total == requests and [s.text for s in again] == [s.text for s in samples]
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert c.raw["vendor_request"]["max_output_tokens"] == 64 + DEFAULT_THINKING_BUDGET
    assert c.raw["response"]["output"][0]["type"] == "reasoning"  # the Responses answer, stored whole


async def test_openai_chat_model_keeps_sampling_and_logprobs(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        gpt = bridge.model("openai/gpt-4.1", base_url=faults.base_url)
        c = await gpt.chat(ASK, temperature=0.3, logprobs=1)
        with pytest.raises(UnsupportedOperation, match="no 'stop' parameter"):
            await gpt.chat(ASK, stop=["\n"])
        with pytest.raises(UnsupportedOperation, match="no text completions"):
            await gpt.complete("Hello")
    assert gpt.capabilities.reasoning_visibility == "none" and c.reasoning is None
    assert faults.bodies[-1]["temperature"] == 0.3 and "reasoning" not in faults.bodies[-1]
    assert c.logprobs is not None and c.logprobs[0].logprob == -0.25
    assert faults.total == 1  # the refused requests never left


async def test_samples_without_a_cache_are_one_request_each(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:  # no cache: the path straight to the transport
        samples = await bridge.model("openai/o3", base_url=faults.base_url).chat(ASK, temperature=1.0, n=3)
    assert len(samples) == 3 and [s.sample_index for s in samples] == [0, 1, 2]
    assert faults.total == 3 and all("n" not in body for body in faults.bodies)
    assert all(s.usage.reasoning_tokens == 32 for s in samples)


async def test_anthropic_extended_thinking_through_litellm(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        claude = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        c = await claude.chat(ASK, temperature=0.7, seed=3, max_tokens=256)
        old = bridge.model("anthropic/claude-3-7-sonnet-latest", base_url=faults.root_url)
        plain = bridge.model("anthropic/claude-3-5-haiku-latest", base_url=faults.root_url)
        p = await plain.chat(ASK, temperature=0.2, max_tokens=32)
        high = await claude.chat(ASK, temperature=0.7, max_tokens=100, extra_body={"reasoning_effort": "high"})
        with pytest.raises(UnsupportedOperation, match="reasoning_effort 'max'"):
            await claude.chat(ASK, extra_body={"reasoning_effort": "max"})
    sent = faults.bodies[0]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": DEFAULT_THINKING_BUDGET}
    assert sent["max_tokens"] == 256 + DEFAULT_THINKING_BUDGET
    assert "temperature" not in sent and "seed" not in sent  # Anthropic rejects sampling changes while thinking
    assert faults.auth_headers[0] == SECRET  # litellm sends it as x-api-key
    assert (c.reasoning, c.text) == (REASONING, c.text) and c.text.startswith("answer ")
    assert c.usage.prompt_tokens == 13 and c.usage.completion_tokens == 45
    assert claude.capabilities.reasoning_visibility == "summary"
    assert old.capabilities.reasoning_visibility == "raw" and old.thinking_format.name == "reasoning-field"
    assert plain.capabilities.reasoning_visibility == "none" and p.reasoning is None
    assert "thinking" not in faults.bodies[1] and faults.bodies[1]["temperature"] == 0.2
    assert faults.bodies[2]["thinking"]["budget_tokens"] == 4096 and faults.bodies[2]["max_tokens"] == 100 + 4096
    assert "temperature" not in faults.bodies[2] and high.reasoning == REASONING and len(faults.bodies) == 3


async def test_gemini_thought_summaries_through_litellm(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        gemini = bridge.model("gemini/gemini-2.5-flash", base_url=faults.root_url + "/v1beta")
        c = await gemini.chat(ASK, max_tokens=100, extra_body={"thinking_budget": 512})
    config = faults.bodies[0]["generationConfig"]
    assert config["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 512}
    assert config["max_output_tokens"] == 100 + 512
    assert faults.auth_headers[0] == SECRET  # x-goog-api-key, never in the URL
    assert c.reasoning == REASONING and c.usage.reasoning_tokens == 20
    assert gemini.capabilities.reasoning_visibility == "summary"


async def test_sdk_failures_are_retried_or_named_without_the_key(faults: FaultServer, keys: None) -> None:
    async with Bridge(retry=FAST_RETRY, timeout_s=1.0) as bridge:
        started = time.monotonic()
        await bridge.model("openai/rate-limited", base_url=faults.base_url).chat(ASK)
        waited = time.monotonic() - started
        await bridge.model("anthropic/flaky-500", base_url=faults.root_url).chat(ASK)
        with pytest.raises(APIStatusError) as bad:
            await bridge.model("gemini/bad-request", base_url=faults.root_url + "/v1beta").chat(ASK)
        with pytest.raises(APITimeoutError, match="no answer within 1 s"):
            await bridge.model("openai/hang", base_url=faults.base_url).chat(ASK)
        with pytest.raises(MalformedResponseError, match="after 3 attempts"):
            await bridge.model("openai/malformed", base_url=faults.base_url).chat(ASK)
    assert waited >= 0.9  # Retry-After: 1 honored through the SDK's exception
    assert faults.requests["rate-limited"] == 2 and faults.requests["flaky-500"] == 2
    assert bad.value.status == 400 and faults.requests["bad-request"] == 1
    assert SECRET not in str(bad.value) and "openai" not in type(bad.value).__module__


async def test_provider_rate_limit_headers_pause_the_endpoint(faults: FaultServer, keys: None) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        used_up = bridge.model("deepseek/limit-used-up", base_url=faults.base_url)
        await used_up.chat(ASK)
        started = time.monotonic()
        await used_up.chat([{"role": "user", "content": "again"}])
        after_used_up = time.monotonic() - started
        started = time.monotonic()
        await bridge.model("anthropic/limit-429", base_url=faults.root_url).chat(ASK)
        after_429 = time.monotonic() - started
    assert after_used_up >= 0.9  # x-ratelimit-remaining-requests: 0, reset 1s
    assert after_429 >= 0.5 and faults.requests["limit-429"] == 2  # a 429 whose only wait is an RFC 3339 reset


async def test_missing_keys_and_extra_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with Bridge() as bridge:
        with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
            bridge.model("anthropic/claude-sonnet-4-5")
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            bridge.model("openai/o3")


async def test_a_summary_only_generator_is_refused_before_any_request(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    study = parse_study(f"""
[study]
name = "impossible"
dataset = "builtin:arithmetic"
conditions = ["transfer"]

[models.o3]
model = "openai/o3"
base_url = "{faults.base_url}"
""")
    with pytest.raises(ConfigError, match=r"\[models.o3\].*only a summary.*generator = false"):
        await run_study(study, tmp_path / "r.db")
    assert faults.total == 0


async def test_mixed_study_local_and_two_hosted_formats(
    llama_server: str, faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    from cotbridge.analysis.report import build_report
    from cotbridge.study.results import ResultsDB

    study = parse_study(f"""
[study]
name = "mixed-sdk"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "default", "transfer"]

[study.decoding]
cot_max_tokens = 16
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama_server}"
thinking_format = "think-tags"

[models.claude]
model = "anthropic/claude-3-7-sonnet-latest"
base_url = "{faults.root_url}"
price = {{ input = 3.0, output = 15.0 }}

[models.o3]
model = "openai/o3"
base_url = "{faults.base_url}"
generator = false
price = {{ input = 2.0, output = 8.0 }}
""")
    db = tmp_path / "r.db"
    summary = await run_study(study, db)
    assert not summary.failures
    results = ResultsDB(db)
    trials = [t for t in results.trials("mixed-sdk") if t.condition == "transfer"]
    report = build_report(results, "mixed-sdk", "strict")
    results.close()
    modes = {(t.evaluator, t.source, t.mode) for t in trials}
    assert modes == {
        ("smol", "smol", "prefill"),
        ("smol", "claude", "prefill"),
        ("claude", "smol", "context"),
        ("claude", "claude", "context"),
        ("o3", "smol", "context"),
        ("o3", "claude", "context"),
    }
    assert report.costs["claude"]["usd"] > 0 and report.costs["o3"]["usd"] > 0
    assert report.costs["o3"]["reasoning_tokens"] > 0
    assert set(report.modes["o3"]) == {"context", "own"} and set(report.modes["smol"]) == {"prefill", "own"}
    from rich.console import Console

    from cotbridge.analysis.render import render_html, render_table

    console = Console(record=True, width=200)
    render_table(report, console)
    text = console.export_text()
    lines = text[text.index("tokens and cost") : text.index("accuracy per evaluator")].splitlines()  # the cost table
    priced_rows = [line.split() for line in lines if line.strip().startswith("o3 ")]
    assert len(priced_rows) > 2 and any(row[1] == "total" for row in priced_rows)  # per condition, then total
    assert [line.split()[1] for line in lines if line.strip().startswith("smol ")] == ["total"]  # unpriced
    page = render_html(report)
    assert "Tokens and cost per model and condition" in page and f"{report.costs['o3']['usd']:.4f}" in page
    # Claude's CoT reached o3 as material in the user message (context mode)
    assert any(REASONING in body["input"][-1]["content"] for body in faults.bodies if "input" in body)
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_models_check_shows_what_a_hosted_model_can_do(faults: FaultServer) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENAI_API_KEY": SECRET, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "models", "check", "openai/o3", "--base-url", faults.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for expected in ("summary", "context", "reasoning-field", "none in this API"):
        assert expected in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_bundled_prices_for_hosted_models_only() -> None:
    from cotbridge import Price
    from cotbridge.providers import PROVIDERS
    from cotbridge.providers.prices import default_price

    assert default_price(PROVIDERS["openai"], "o3") == Price(input=2.0, output=8.0)  # litellm 1.110.2's map
    assert default_price(PROVIDERS["deepseek"], "deepseek-reasoner") == Price(input=0.28, output=0.42)
    assert default_price(PROVIDERS["local"], "smollm2-135m") is None and default_price(PROVIDERS["vllm"], "o3") is None
    assert default_price(PROVIDERS["openai"], "no-such-model") is None
