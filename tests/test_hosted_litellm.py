"""Anthropic and Gemini through litellm, against imitations rebuilt from the vendors' references
(tests/imitations/anthropic.py, tests/imitations/gemini.py): each model is asked to think the way its capabilities
say, what it refuses is refused before sending, and what comes back (summaries, redacted thinking, a reply cut off
by its output limit) reaches the CoT as it should. litellm and the HTTP are real; the server is the fault server.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from cotbridge import Bridge, ConfigError, load_dataset
from cotbridge.analysis.report import build_report
from cotbridge.cot import transfer
from cotbridge.errors import UnsupportedOperation
from cotbridge.study import parse_study, run_study
from cotbridge.study.results import ResultsDB
from tests.fault_server import FaultServer
from tests.imitations import REASONING
from tests.imitations.anthropic import HARD_PROBLEM, REDACTED_TRIGGER

needs_litellm = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="anthropic/ and gemini/ need the extra `hosted` (litellm)"
)
pytestmark = needs_litellm

PROBLEM = load_dataset("builtin:arithmetic")[0]
SECRET = "sk-litellm-test-7b21c4"
ASK = [{"role": "user", "content": "What is 17 + 25?"}]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, SECRET)


def asking(question: str) -> Any:
    """The arithmetic problem with another user message."""
    prompt = [m if m["role"] != "user" else {**m, "content": question} for m in PROBLEM.prompt]
    return dataclasses.replace(PROBLEM, id=f"{PROBLEM.id}-variant", prompt=prompt)


def gemini_url(faults: FaultServer) -> str:
    return faults.root_url + "/v1beta"


def thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = body["generationConfig"]["thinkingConfig"]
    return config


async def test_opus_4_7_and_claude_5_explain_with_a_summary_asked_for_adaptively(
    faults: FaultServer, keys: None
) -> None:
    async with Bridge() as bridge:
        for served in ("claude-opus-4-7", "claude-opus-5"):
            model = bridge.model(f"anthropic/{served}", base_url=faults.root_url)
            explanation = await transfer.explain(model, PROBLEM)  # greedy: temperature 0
            sent = faults.bodies[-1]
            assert explanation.cot == REASONING and not explanation.truncated, served
            assert sent["thinking"] == {"type": "adaptive", "display": "summarized"}, served
            assert "temperature" not in sent and "top_p" not in sent and "output_config" not in sent, served
        low = await model.chat(ASK, extra_body={"reasoning_effort": "low"})
    assert faults.bodies[-1]["output_config"] == {"effort": "low"} and low.reasoning == REASONING
    assert faults.total == 3


async def test_a_budget_the_vendor_refuses_is_refused_before_sending(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        sonnet = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        with pytest.raises(ConfigError, match=r"claude-sonnet-4-5: a thinking budget of 512 .* minimum of 1024"):
            await sonnet.chat(ASK, extra_body={"thinking_budget": 512})
        opus = bridge.model("anthropic/claude-opus-4-7", base_url=faults.root_url)
        with pytest.raises(UnsupportedOperation, match="claude-opus-4-7 takes no thinking budget"):
            await opus.chat(ASK, extra_body={"thinking_budget": 2048})
    assert faults.total == 0


async def test_budget_models_get_budget_tokens_and_adaptive_models_adaptive_thinking(
    faults: FaultServer, keys: None
) -> None:
    async with Bridge() as bridge:
        sonnet_45 = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        budgeted = await sonnet_45.chat(ASK, temperature=0.0, max_tokens=100, extra_body={"thinking_budget": 1500})
        opus_46 = bridge.model("anthropic/claude-opus-4-6", base_url=faults.root_url)
        adaptive = await opus_46.chat(ASK, max_tokens=100, extra_body={"reasoning_effort": "max"})
        await opus_46.chat(ASK, max_tokens=100, extra_body={"thinking_budget": 1024})  # 4.6 still takes budgets
    first, second, third = faults.bodies
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 1500} and first["max_tokens"] == 1600
    assert "temperature" not in first and budgeted.reasoning == REASONING
    assert second["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert second["output_config"] == {"effort": "max"} and adaptive.reasoning == REASONING
    assert third["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_gemini_3_thinks_at_the_level_of_each_effort(faults: FaultServer, keys: None, tmp_path: Path) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        flash = bridge.model("gemini/gemini-3-flash-preview", base_url=gemini_url(faults))
        low = await flash.chat(ASK, extra_body={"reasoning_effort": "low"})
        high = await flash.chat(ASK, extra_body={"reasoning_effort": "high"})
        pro = bridge.model("gemini/gemini-3-pro-preview", base_url=gemini_url(faults))
        with pytest.raises(UnsupportedOperation, match="reasoning_effort 'medium' is not one it takes"):
            await pro.chat(ASK, extra_body={"reasoning_effort": "medium"})
        with pytest.raises(UnsupportedOperation, match="gemini-3-pro-preview takes no thinking budget"):
            await pro.chat(ASK, extra_body={"thinking_budget": 2048})
    levels = [thinking_config(body) for body in faults.bodies]
    assert levels == [
        {"thinkingLevel": "low", "includeThoughts": True},
        {"thinkingLevel": "high", "includeThoughts": True},
    ]
    assert faults.total == 2 and low.text != high.text  # two conditions, two requests, two cache entries
    assert low.reasoning == REASONING and high.reasoning == REASONING


async def test_gemini_2_5_thinks_within_a_budget(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        pro = bridge.model("gemini/gemini-2.5-pro", base_url=gemini_url(faults))
        effort = await pro.chat(ASK, max_tokens=100, extra_body={"reasoning_effort": "low"})
        budget = await pro.chat(ASK, max_tokens=100, extra_body={"thinking_budget": 700})
        flash = bridge.model("gemini/gemini-2.5-flash", base_url=gemini_url(faults))
        with pytest.raises(ConfigError, match=r"gemini-2.5-flash: .* above the vendor's maximum of 24576"):
            await flash.chat(ASK, extra_body={"thinking_budget": 30000})  # refused here, not sent
    first, second = faults.bodies
    assert thinking_config(first) == {"includeThoughts": True, "thinkingBudget": 1024}
    assert thinking_config(second) == {"includeThoughts": True, "thinkingBudget": 700}
    assert second["generationConfig"]["max_output_tokens"] == 100 + 700
    assert effort.reasoning == REASONING and budget.reasoning == REASONING


async def test_redacted_thinking_marks_the_cot_as_having_gaps(faults: FaultServer, keys: None, tmp_path: Path) -> None:
    flagged = asking(f"What is 17 + 25? {REDACTED_TRIGGER}")
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        claude = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        gappy = await transfer.explain(claude, flagged)
        whole = await transfer.explain(claude, PROBLEM)
    async with Bridge(cache=tmp_path / "c.db") as bridge:  # the mark survives the cache
        claude = bridge.model("anthropic/claude-sonnet-4-5", base_url=faults.root_url)
        again = await transfer.explain(claude, flagged)
    assert gappy.redacted and gappy.cot == REASONING and not whole.redacted
    assert again.redacted and faults.total == 2

    dataset = tmp_path / "q.jsonl"
    rows = [{"id": "plain", "question": "What is 2 + 3?", "answer": 5}]
    rows.append({"id": "flagged", "question": f"What is 2 + 3? {REDACTED_TRIGGER}", "answer": 5})
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    study = parse_study(f"""
[study]
name = "gaps"
dataset = "jsonl:{dataset}"
conditions = ["transfer"]

[models.claude]
model = "anthropic/claude-3-7-sonnet-latest"
base_url = "{faults.root_url}"
""")
    summary = await run_study(study, tmp_path / "r.db")
    assert not summary.failures
    results = ResultsDB(tmp_path / "r.db")
    stored = {row.problem_id: row.redacted for row in results.explanations("gaps")}
    report = build_report(results, "gaps")
    results.close()
    assert stored == {"plain": False, "flagged": True}
    assert report.redacted_cots == {"claude/greedy": 1} and report.as_json()["redacted_cots"] == {"claude/greedy": 1}


async def test_thinking_that_uses_up_the_output_limit_is_a_truncated_cot(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    hard = asking(f"What is 17 + 25? {HARD_PROBLEM}")
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        opus = bridge.model("anthropic/claude-opus-4-7", base_url=faults.root_url)
        cut = await transfer.explain(opus, hard)
        reply = await opus.chat(hard.prompt, max_tokens=50)
        gemini = bridge.model("gemini/gemini-3-flash-preview", base_url=gemini_url(faults))
        gemini_cut = await transfer.explain(gemini, hard)
        await transfer.explain(opus, hard)  # a cut-off reply is not cached: asked again, sent again
    assert cut.truncated and cut.final_text == "" and cut.cot == REASONING  # the summary so far is kept
    assert (reply.finish_reason, reply.text) == ("length", "")
    assert gemini_cut.truncated and gemini_cut.final_text == "" and gemini_cut.cot == REASONING
    assert faults.bodies[-2]["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert faults.total == 4
