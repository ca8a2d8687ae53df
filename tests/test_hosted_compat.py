"""Hosted APIs in the OpenAI format as they really behave: DeepSeek's thinking mode, OpenRouter's reasoning fields
and vendors, Together's and Fireworks' echoed prompt log-probs.

Each vendor is answered by its imitation on the fault server (`tests/imitations/`, under `/VENDOR/v1`), which names
the reference page it follows; the cache is a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, UnsupportedOperation, load_dataset
from cotbridge.cot import transfer
from cotbridge.options import DEFAULT_ANSWER_TOKENS, DEFAULT_COT_TOKENS
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET
from cotbridge.study import parse_study, run_study
from cotbridge.study.phases import Progress
from cotbridge.study.results import ResultsDB
from tests.fault_server import FaultServer
from tests.imitations import REASONING

PROBLEM = load_dataset("builtin:arithmetic")[0]
SECRET = "sk-hosted-compat-5d01aa"
ASK = [{"role": "user", "content": "What is 17 + 25?"}]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY"):
        monkeypatch.setenv(variable, SECRET)


def url(faults: FaultServer, vendor: str) -> str:
    return f"{faults.root_url}/{vendor}/v1"


async def test_deepseek_gets_thinking_room_so_an_answer_budget_leaves_an_answer(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        flash = bridge.model("deepseek/deepseek-v4-flash", base_url=url(faults, "deepseek"))
        answer = await transfer.answer(flash, PROBLEM, "Add the numbers.", max_tokens=256)
        again = await transfer.answer(flash, PROBLEM, "Add the numbers.", max_tokens=256)
        roomy = await flash.chat(ASK, max_tokens=256, extra_body={"thinking_budget": 4096})
        plain = await flash.chat(ASK, max_tokens=8, extra_body={"thinking": {"type": "disabled"}})
    assert answer.text == "Answer: 42" and not answer.truncated and again.cached
    sent = faults.bodies
    assert sent[0]["max_tokens"] == 256 + DEFAULT_THINKING_BUDGET and len(sent) == 3  # the second answer was cached
    assert sent[1]["max_tokens"] == 256 + 4096 and "thinking_budget" not in sent[1] and roomy.text == "Answer: 42"
    assert sent[2]["max_tokens"] == 8 and plain.reasoning is None  # thinking off: the answer's own room
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert (
        flash.capabilities.max_tokens_includes_cot and flash.capabilities.family == "DeepSeek thinking mode (V3.2, V4)"
    )


async def test_deepseek_refuses_logprobs_before_sending_while_it_thinks(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        pro = bridge.model("deepseek/deepseek-v4-pro", base_url=url(faults, "deepseek"))
        with pytest.raises(UnsupportedOperation, match=r"deepseek/deepseek-v4-pro: .*'logprobs'.*turn thinking off"):
            await pro.chat(ASK, logprobs=2)
        assert faults.total == 0  # refused here, not by the vendor
        plain = await pro.chat(ASK, logprobs=2, extra_body={"thinking": {"type": "disabled"}})
    assert plain.logprobs is not None and faults.bodies[-1]["top_logprobs"] == 2


DEEPSEEK_STUDY = """
[study]
name = "deepseek"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["empty", "transfer"]

[models.flash]
model = "deepseek/deepseek-v4-flash"
base_url = "{url}"

[models.pro]
model = "deepseek/deepseek-v4-pro"
base_url = "{url}"

[models.open]
model = "openai-compatible/ok"
base_url = "{generic}"
generator = false
"""


async def test_a_deepseek_study_answers_within_its_budget_and_the_plan_says_greedy_is_sampled(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    events: list[Progress] = []
    text = DEEPSEEK_STUDY.format(url=url(faults, "deepseek"), generic=faults.base_url)
    summary = await run_study(parse_study(text), tmp_path / "r.db", on_progress=events.append)
    assert not summary.failures
    results = ResultsDB(tmp_path / "r.db")
    trials = [t for t in results.trials("deepseek") if t.evaluator in ("flash", "pro")]
    results.close()
    assert trials and not [t for t in trials if t.truncated] and {t.answer for t in trials} == {"42"}
    (plan,) = [event.plan for event in events if event.plan is not None]
    rows = {row["name"]: row for row in plan}
    assert rows["flash"]["greedy"] == rows["pro"]["greedy"] == "no: sampled (temperature ignored)"
    assert rows["open"]["greedy"] == "yes"


ROUTED_STUDY = """
[study]
name = "routed"
dataset = "builtin:arithmetic"
sample = 2
conditions = ["transfer"]

[models.r]
model = "openrouter/{model}"
base_url = "{url}"
"""


REFUSED = {
    "anthropic/claude-opus-4.7": "thinks but returns none of its reasoning",
    "openai/o3": "returns only a summary of its reasoning",
}


async def test_openrouter_generators_take_the_vendors_visibility_and_a_raw_one_gets_thinking_room(
    faults: FaultServer, keys: None, tmp_path: Path
) -> None:
    for model, why in REFUSED.items():
        study = parse_study(ROUTED_STUDY.format(model=model, url=url(faults, "openrouter")))
        with pytest.raises(ConfigError, match=rf"\[models\.r\]: openrouter/{model} {why}"):
            await run_study(study, tmp_path / "refused.db")
    assert faults.total == 0
    async with Bridge() as bridge:  # what such models do return, read from OpenRouter's two fields
        replies = {
            model: await bridge.model(f"openrouter/{model}", base_url=url(faults, "openrouter")).chat(ASK)
            for model in REFUSED
        }
    assert replies["openai/o3"].reasoning == REASONING  # the imitation's summary: a summary all the same
    assert replies["anthropic/claude-opus-4.7"].reasoning is None and replies["anthropic/claude-opus-4.7"].text
    faults.reset_counts()
    study = parse_study(ROUTED_STUDY.format(model="deepseek/deepseek-v4-flash", url=url(faults, "openrouter")))
    summary = await run_study(study, tmp_path / "r.db")
    assert not summary.failures
    results = ResultsDB(tmp_path / "r.db")
    cots = list(results.explanations("routed"))
    results.close()
    assert cots and {e.cot for e in cots} == {REASONING}
    first = faults.bodies[0]
    asked = DEFAULT_COT_TOKENS + DEFAULT_ANSWER_TOKENS  # what an explanation asks for, reasoning and answer
    assert first["reasoning"] == {"enabled": True} and first["max_tokens"] == asked + DEFAULT_THINKING_BUDGET


def test_openrouter_reasoning_details_stand_in_for_a_missing_reasoning_field() -> None:
    from cotbridge.providers.wire import ROUTED_CHAT  # OpenRouter's chat format

    def reasoning(*details: dict[str, str]) -> object:
        message = {"role": "assistant", "content": "4", "reasoning_details": list(details)}
        return ROUTED_CHAT.check({"choices": [{"message": message}]})["choices"][0]["message"].get("reasoning")

    text = {"type": "reasoning.text", "text": "2 and 2 make 4.", "signature": "sig"}
    summary = {"type": "reasoning.summary", "summary": "**Adding**"}
    sealed = {"type": "reasoning.encrypted", "data": "opaque"}
    assert reasoning(text, sealed) == "2 and 2 make 4."
    assert reasoning(summary, sealed, {"type": "reasoning.summary", "summary": "Done."}) == "**Adding**\n\nDone."
    assert reasoning(sealed) is None
    both = {"role": "assistant", "content": "4", "reasoning": "kept", "reasoning_details": [text]}
    assert ROUTED_CHAT.check({"choices": [{"message": both}]})["choices"][0]["message"]["reasoning"] == "kept"


async def test_together_scores_from_its_prompt_field(faults: FaultServer, keys: None, tmp_path: Path) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        qwq = bridge.model("together/Qwen/QwQ-32B", base_url=url(faults, "together"))
        scored = await qwq.score("The sky is", " blue today.")
        again = await qwq.score("The sky is", " blue today.")
    sent = faults.bodies[-1]
    assert sent["echo"] is True and sent["prompt"] == "The sky is blue today." and sent["logprobs"] >= 1
    assert [t.token for t in scored.tokens] == [" blue", " today."]  # only the continuation's tokens
    assert [t.logprob for t in scored.tokens] == pytest.approx([-0.9, -1.0])  # after the BOS it echoed first
    assert [t.token_id for t in scored.tokens] == [104, 105] and again.cached and faults.total == 1
    assert qwq.thinking_format.name == "think-tags" and qwq.capabilities.prompt_scoring == "prompt-field"


async def test_fireworks_scores_leave_out_the_generated_token(faults: FaultServer, keys: None) -> None:
    async with Bridge() as bridge:
        model = bridge.model("fireworks/accounts/fireworks/models/qwq-32b", base_url=url(faults, "fireworks"))
        scored = await model.score("The sky is", " blue today.")
        assert [t.token for t in scored.tokens] == [" blue", " today."]  # not the " the" it generated after them
        assert [t.logprob for t in scored.tokens] == pytest.approx([-0.8, -0.9])
        assert [t.token_id for t in scored.tokens] == [203, 204]
        with pytest.raises(UnsupportedOperation, match="no log-prob for a token of the continuation"):
            await model.score("", "Sky")  # its first token has none: an error, not a shorter score
    assert faults.bodies[0]["echo"] is True and faults.bodies[0]["max_tokens"] == 1
