"""OpenAI's Responses API as its models really behave (tests/imitations/openai_responses.py): GPT-5.1 and later do
not reason unless asked, an organisation that is not verified is refused reasoning summaries, `max_output_tokens`
has a floor of 16, a limit spent on reasoning leaves no answer, and the SDK's HTTP client keeps the transport's
rules. The openai SDK is real; it talks HTTP to the fault server."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotbridge import Bridge, RetryPolicy, load_dataset
from cotbridge.client.probe import probe
from cotbridge.cot import transfer
from cotbridge.errors import APIStatusError, MalformedResponseError
from cotbridge.providers import PROVIDERS
from cotbridge.providers.capabilities import thinking_text
from cotbridge.providers.capability_resolution import resolve_capabilities
from cotbridge.providers.openai_responses import OpenAIResponsesProvider
from cotbridge.study import parse_study, run_study
from tests.conftest import capped_endpoint
from tests.fault_server import REASONING, FaultServer

SECRET = "sk-openai-test-71c2d9"
ASK = [{"role": "user", "content": "What is 17 + 25?"}]
FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait_s=0.05, jitter_s=0.0)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


async def test_gpt_5_1_asked_without_an_effort_gets_one_that_reasons(faults: FaultServer, key: None) -> None:
    async with Bridge() as bridge:
        gpt = bridge.model("openai/gpt-5.1", base_url=faults.base_url)
        c = await gpt.chat(ASK, max_tokens=64)
        plain = await gpt.chat(ASK, max_tokens=64, extra_body={"reasoning_effort": "none"})
    assert faults.bodies[0]["reasoning"] == {"summary": "auto", "effort": "medium"}
    assert (c.reasoning, c.usage.reasoning_tokens) == (REASONING, 32)
    assert faults.bodies[1]["reasoning"]["effort"] == "none"  # the caller's choice stands: no reasoning at all
    assert plain.reasoning is None and plain.usage.reasoning_tokens == 0
    assert thinking_text(gpt.capabilities) == "effort (off by default, default none; cotbridge asks medium)"
    for newer in ("gpt-5.2", "gpt-5.5", "gpt-5.6-terra"):  # the plan says the same for every model that needs it
        assert "cotbridge asks medium" in thinking_text(resolve_capabilities(PROVIDERS["openai"], newer))
    assert "asks" not in thinking_text(resolve_capabilities(PROVIDERS["openai"], "o3"))  # o3 reasons by default


async def test_a_summary_refused_to_the_organisation_is_asked_once_without_it(
    faults: FaultServer, key: None, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        o3 = bridge.model("openai/o3-unverified", base_url=faults.base_url)
        assert o3.capabilities.visibility == "summary"
        first = await o3.chat(ASK, max_tokens=64)
        second = await o3.chat([{"role": "user", "content": "And 2 + 2?"}], max_tokens=64)
        notes = list(bridge.stats.notes)
        visibility = o3.capabilities.visibility
    assert [body["reasoning"] for body in faults.bodies] == [{"summary": "auto"}, {}, {}]  # one retry, then none
    assert first.text.startswith("answer ") and first.reasoning is None and first.usage.reasoning_tokens == 32
    assert second.text.startswith("answer ") and faults.requests["o3-unverified"] == 3
    assert visibility == "none" and first.raw["vendor_request"]["reasoning"] == {}
    assert len(notes) == 1 and "openai/o3-unverified" in notes[0] and "must be verified" in notes[0]
    async with Bridge(cache=db) as bridge:  # the cache keys did not move: a rerun asks nothing
        o3 = bridge.model("openai/o3-unverified", base_url=faults.base_url)
        again = [
            await o3.chat(ASK, max_tokens=64),
            await o3.chat([{"role": "user", "content": "And 2 + 2?"}], max_tokens=64),
        ]
    assert faults.total == 3 and [a.text for a in again] == [first.text, second.text]
    assert SECRET.encode() not in db.read_bytes()


async def test_a_study_run_carries_the_refused_summary_as_a_note(
    faults: FaultServer, key: None, tmp_path: Path
) -> None:
    study = parse_study(f"""
[study]
name = "unverified"
dataset = "builtin:arithmetic"
sample = 1
conditions = ["default"]

[models.o3]
model = "openai/o3-unverified"
base_url = "{faults.base_url}"
generator = false
""")
    summary = await run_study(study, tmp_path / "r.db")
    assert not summary.failures
    assert len(summary.notes) == 1 and "CoT visible: none" in summary.notes[0]


async def test_max_output_tokens_keeps_the_floor_and_no_quota_ends_at_once(faults: FaultServer, key: None) -> None:
    async with Bridge(retry=FAST_RETRY) as bridge:
        gpt = bridge.model("openai/gpt-4.1", base_url=faults.base_url)
        short = await gpt.chat(ASK, max_tokens=4)
        thinking = bridge.model("openai/o3", base_url=faults.base_url)
        await thinking.chat(ASK, max_tokens=4, extra_body={"thinking_budget": 0})
        with pytest.raises(APIStatusError, match="account has no quota") as info:
            await bridge.model("openai/o3-no-quota", base_url=faults.base_url).chat(ASK)
    assert faults.bodies[0]["max_output_tokens"] == 16 and short.text.startswith("answer ")  # 4 asked: the floor
    assert faults.bodies[1]["max_output_tokens"] == 16
    assert info.value.status == 429 and faults.requests["o3-no-quota"] == 1 and SECRET not in str(info.value)


async def test_a_limit_spent_on_reasoning_is_a_cut_answer(faults: FaultServer, key: None) -> None:
    problem = load_dataset("builtin:arithmetic")[0]
    async with Bridge() as bridge:
        gpt = bridge.model("openai/gpt-5.1", base_url=faults.base_url, extra_body={"thinking_budget": 0})
        c = await gpt.chat(ASK, max_tokens=16)
        told = await transfer.explain(gpt, problem, max_tokens=8, answer_max_tokens=8)
    assert faults.bodies[0]["max_output_tokens"] == 16 and faults.bodies[0]["reasoning"]["effort"] == "medium"
    assert (c.text, c.finish_reason, c.usage.reasoning_tokens, c.reasoning) == ("", "length", 16, None)
    assert told.truncated and told.answer_truncated and told.final_text == ""


async def test_models_check_works_on_responses_models(faults: FaultServer, key: None) -> None:
    async with Bridge(cache=None, retry=FAST_RETRY) as bridge:
        plain = await probe(bridge.model("openai/gpt-4.1", base_url=faults.base_url))
        unverified = await probe(bridge.model("openai/o3-unverified", base_url=faults.base_url))
    assert plain["chat"] == "yes" and plain["logprobs"] == "yes" and "notes" not in plain
    assert unverified["chat"] == "yes" and unverified["CoT visible"] == "none"
    assert "must be verified" in unverified["notes"]


async def test_the_responses_client_keeps_the_transport_rules(faults: FaultServer) -> None:
    endpoint = capped_endpoint(faults.base_url)
    capabilities = resolve_capabilities(PROVIDERS["openai"], "huge")
    huge = OpenAIResponsesProvider("openai", "openai/huge", "huge", endpoint, SECRET, capabilities)
    moved = OpenAIResponsesProvider("openai", "openai/redirect", "redirect", endpoint, SECRET, capabilities)
    ok = OpenAIResponsesProvider("openai", "openai/ok", "ok", endpoint, SECRET, capabilities)
    try:
        # Stopped while reading, at the cap: not after reading all of it.
        with pytest.raises(MalformedResponseError, match="over 1,048,576 bytes, more than max_response_bytes") as big:
            await huge.chat({"model": "huge", "messages": ASK})
        with pytest.raises(APIStatusError, match="redirects to .*/redirected; cotbridge does not follow") as info:
            await moved.chat({"model": "redirect", "messages": ASK})
        assert (await ok.chat({"model": "ok", "messages": ASK}))["choices"]  # the endpoint still works
    finally:
        for provider in (huge, moved, ok):
            await provider.aclose()
        await endpoint.aclose()
    assert big.value.model == "openai/huge" and SECRET not in str(big.value) and faults.requests["huge"] == 1
    assert info.value.status == 302 and faults.redirect_gets == 0 and faults.requests["redirect"] == 1
