"""Hosted OpenAI-format APIs, shaped and parsed against a local server that answers in their wire format.

The real hosted APIs cannot be reached from here; the server records what cotbridge sends and answers as the
providers document (DeepSeek: `reasoning_content`; OpenRouter: a `reasoning` request parameter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, load_dataset
from cotbridge.study import parse_study, run_study
from tests.fault_server import FaultServer

PROBLEM = load_dataset("builtin:arithmetic")[0]
SECRET = "sk-hosted-test-91c2f0"


async def test_deepseek_reasoning_content_and_key_from_its_variable(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", SECRET)
    async with Bridge() as bridge:
        m = bridge.model("deepseek/deepseek-reasoner", base_url=faults.base_url)
        c = await m.chat([{"role": "user", "content": "What is 17 + 25?"}])
        e = await m.explain(PROBLEM)
        a = await m.answer(PROBLEM, e)
        with pytest.raises(ConfigError, match="cannot take a CoT in 'prefill' mode"):
            await m.answer(PROBLEM, e, mode="prefill")
    assert (c.text, c.reasoning) == ("Answer: 42", "Add 17 and 25. That makes 42.")
    assert faults.auth_headers[0] == f"Bearer {SECRET}"
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
        with pytest.raises(ConfigError, match="'anthropic' is not available in this version"):
            bridge.model("anthropic/claude-sonnet-4")


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
    from cotbridge.results import ResultsDB

    results = ResultsDB(db)
    modes = {(t.evaluator, t.source, t.mode) for t in results.trials("mixed") if t.condition == "transfer"}
    results.close()
    assert modes == {
        ("smol", "smol", "prefill"),
        ("smol", "reasoner", "prefill"),
        ("reasoner", "smol", "context"),
        ("reasoner", "reasoner", "context"),
    }
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
