"""Hosted OpenAI-format APIs, shaped and parsed against a local server that answers in their wire format.

The real hosted APIs cannot be reached from here; the server records what cotbridge sends and answers as the
providers document (DeepSeek: `reasoning_content`; OpenRouter: a `reasoning` request parameter). Each vendor's own
behaviour, answered by its imitation, is tested in `test_hosted_compat.py`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, RetryPolicy, load_dataset
from cotbridge.cot import transfer
from cotbridge.errors import APIStatusError, MalformedResponseError
from cotbridge.providers import PROVIDERS
from cotbridge.providers.capability_resolution import resolve_capabilities
from cotbridge.study import parse_study, run_study
from tests.conftest import capped_endpoint
from tests.fault_server import FaultServer

PROBLEM = load_dataset("builtin:arithmetic")[0]
SECRET = "sk-hosted-test-91c2f0"
ASK = [{"role": "user", "content": "What is 17 + 25?"}]
FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait_s=0.05, jitter_s=0.0)
needs_litellm = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="anthropic/ and gemini/ need the extra `hosted` (litellm)"
)
# Where each litellm provider's API is on the fault server: Anthropic's Messages, Gemini's generateContent.
LITELLM_PATHS = {"anthropic": "", "gemini": "/v1beta"}


async def test_deepseek_reasoning_content_and_key_from_its_variable(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", SECRET)
    async with Bridge() as bridge:
        m = bridge.model("deepseek/deepseek-reasoner", base_url=faults.base_url)
        c = await m.chat([{"role": "user", "content": "What is 17 + 25?"}])
        e = await transfer.explain(m, PROBLEM)
        a = await transfer.answer(m, PROBLEM, e)
        with pytest.raises(ConfigError, match="cannot take a CoT in 'prefill' mode"):
            await transfer.answer(m, PROBLEM, e, mode="prefill")
    assert (c.text, c.reasoning) == ("Answer: 42", "Add 17 and 25. That makes 42.")
    assert faults.auth_headers[-1] == f"Bearer {SECRET}"
    assert m.thinking_format.name == "reasoning-field" and m.capabilities.reasoning_visibility == "raw"
    assert e.cot == "Add 17 and 25. That makes 42." and e.answer is not None and e.answer.parsed == "42"
    assert a.mode == "context" and "That makes 42." in faults.bodies[-1]["messages"][-1]["content"]


async def test_openrouter_asks_for_reasoning(faults: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    async with Bridge() as bridge:
        await bridge.model("openrouter/ok", base_url=faults.base_url).chat([{"role": "user", "content": "hi"}])
    assert faults.bodies[-1]["reasoning"] == {"enabled": True}


async def test_missing_keys_and_unavailable_providers_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    async with Bridge() as bridge:
        with pytest.raises(ConfigError, match="TOGETHER_API_KEY"):
            bridge.model("together/Qwen/QwQ-32B")
        with pytest.raises(ConfigError, match="unknown provider 'anthropc'"):
            bridge.model("anthropc/claude-sonnet-4")


async def test_mixed_study_local_and_hosted(
    llama_server: str, faults: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", SECRET)
    study = parse_study(f"""
[study]
name = "mixed"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "transfer"]

[study.retry]
max_attempts = 2
initial_wait_s = 0.05

[study.decoding]
cot_max_tokens = 16
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama_server}"
thinking_format = "think-tags"

[models.reasoner]
model = "deepseek/deepseek-reasoner"
base_url = "{faults.base_url}"
""")
    db = tmp_path / "r.db"
    summary = await run_study(study, db)
    assert not summary.failures
    from cotbridge.study.results import ResultsDB

    results = ResultsDB(db)
    modes = {(t.evaluator, t.source, t.mode) for t in results.trials("mixed") if t.condition == "transfer"}
    results.close()
    assert modes == {
        ("smol", "smol", "prefill"),
        ("smol", "reasoner", "prefill"),
        ("reasoner", "smol", "context"),
        ("reasoner", "reasoner", "context"),
    }
    if importlib.util.find_spec("litellm") is not None:  # no price in the study: the bundled one applies
        from cotbridge.analysis.report import build_report

        results = ResultsDB(db)
        costs = build_report(results, "mixed", "strict").costs
        results.close()
        assert costs["reasoner"]["usd"] > 0 and costs["smol"]["usd"] is None
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_price_and_budget_arithmetic() -> None:
    from cotbridge import BudgetExceeded, Price
    from cotbridge.client.budget import Budget
    from cotbridge.records import Usage

    price = Price(input=2.0, output=8.0)
    assert price.cost(Usage(1_000_000, 500_000)) == pytest.approx(2.0 + 4.0)
    budget = Budget(0.01)
    held = budget.reserve(price, 1000, "m")  # worst case 1000 tokens at the output price: $0.008
    with pytest.raises(BudgetExceeded, match="budget"):
        budget.reserve(price, 1000, "m")  # would pass the limit while the first is in flight
    budget.settle(held, 0.002)
    assert budget.spent_usd == pytest.approx(0.002) and budget.reserved_usd == pytest.approx(0.0)


async def test_costs_in_the_report_and_a_budget_that_stops_the_study(
    llama_server: str, faults: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cotbridge.analysis.report import build_report
    from cotbridge.study.results import ResultsDB

    monkeypatch.setenv("DEEPSEEK_API_KEY", SECRET)
    text = f"""
[study]
name = "priced"
dataset = "builtin:arithmetic"
sample = 4
conditions = ["empty", "transfer"]
budget_usd = 0.15

[study.decoding]
cot_max_tokens = 16
answer_max_tokens = 8

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama_server}"
thinking_format = "think-tags"

[models.reasoner]
model = "deepseek/deepseek-reasoner"
base_url = "{faults.base_url}"
price = {{ input = 1000.0, output = 1000.0 }}
extra_body = {{ thinking_budget = 16 }}  # the room its thinking gets on top of max_tokens counts in the reservation
"""
    db = tmp_path / "r.db"
    stopped = await run_study(parse_study(text), db)
    assert stopped.over_budget > 0 and any("budget reached" in f for f in stopped.failures)
    sent = faults.requests["deepseek-reasoner"]
    assert 0 < sent < 4 + 4 * 2  # some requests went out, then the budget stopped the rest
    finished = await run_study(parse_study(text.replace("budget_usd = 0.15", "budget_usd = 100.0")), db)
    assert finished.over_budget == 0 and not finished.failures
    results = ResultsDB(db)
    report = build_report(results, "priced", "strict")
    results.close()
    assert report.costs["reasoner"]["usd"] > 0 and report.costs["smol"]["usd"] is None
    assert report.costs["reasoner"]["prompt_tokens"] > 0


@needs_litellm
@pytest.mark.parametrize("provider", sorted(LITELLM_PATHS))
async def test_litellm_never_follows_a_redirect(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    monkeypatch.setenv(f"{provider.upper()}_API_KEY", SECRET)
    async with Bridge(retry=FAST_RETRY) as bridge:
        model = bridge.model(f"{provider}/redirect", base_url=faults.root_url + LITELLM_PATHS[provider])
        with pytest.raises(APIStatusError, match="redirects to .*/redirected; cotbridge does not follow") as info:
            await model.chat(ASK)
        assert (await bridge.model(f"{provider}/ok", base_url=model.provider.endpoint.base_url).chat(ASK)).text
    assert info.value.status == 302 and SECRET not in str(info.value)
    assert faults.redirect_gets == 0 and faults.requests["redirect"] == 1  # refused at once, never retried


@needs_litellm
@pytest.mark.parametrize("provider", sorted(LITELLM_PATHS))
async def test_litellm_fails_at_once_on_a_response_over_the_size_cap(faults: FaultServer, provider: str) -> None:
    from cotbridge.providers.litellm_hosted import LiteLLMProvider, import_litellm

    import_litellm()
    endpoint = capped_endpoint(faults.root_url + LITELLM_PATHS[provider])
    capabilities = resolve_capabilities(PROVIDERS[provider], "huge")
    huge = LiteLLMProvider(provider, f"{provider}/huge", "huge", endpoint, SECRET, capabilities)
    ok = LiteLLMProvider(provider, f"{provider}/ok", "ok", endpoint, SECRET, capabilities)
    try:
        with pytest.raises(MalformedResponseError, match="more than max_response_bytes = 1,048,576") as info:
            await huge.chat({"model": "huge", "messages": ASK})
        assert info.value.model == f"{provider}/huge" and SECRET not in str(info.value)
        assert faults.requests["huge"] == 1
        assert (await ok.chat({"model": "ok", "messages": ASK}))["choices"]  # the endpoint still works
    finally:
        await huge.aclose()
        await ok.aclose()
        await endpoint.aclose()
