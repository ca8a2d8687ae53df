"""Explain and answer end to end on a real llama.cpp server: exact prompt bytes, modes, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotbridge import Bridge, ConfigError, Explanation, load_dataset
from cotbridge.cot import split_sentences, transfer
from cotbridge.providers.local import LocalServer, local_model_path
from tests.fault_server import FaultServer

PROBLEMS = load_dataset("builtin:arithmetic")
# A QwQ-like template: its generation prompt already opens <think>.
OPENS_THINK = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


async def test_prefill_prompt_bytes_are_exact(llama_server: str, tmp_path: Path) -> None:
    problem = PROBLEMS[0]
    cot = "Add the numbers. Answer: 999 is what a careless reader would take."
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        rendered = await m.render(problem.prompt)
        answer = await transfer.answer(m, problem, cot, max_tokens=32)
        requests = bridge.stats.requests
        again = await transfer.answer(m, problem, cot, max_tokens=32)
    assert answer.mode == "prefill"
    assert answer.prompt_text == rendered + "<think>\n" + cot + "\n</think>\n\n"
    assert rendered.endswith("<|im_start|>assistant\n") and rendered.count("<think>") == 0
    # The answer is what the model generated after the prompt, never the injected CoT.
    assert cot not in answer.text and answer.score == problem.check(answer.text)
    assert again.text == answer.text and bridge.stats.requests == requests


async def test_a_template_that_opens_think_is_not_opened_twice(tmp_path: Path) -> None:
    server = LocalServer(local_model_path("smollm2-135m"), alias="qwq-like", chat_template=OPENS_THINK, parallel=1)
    url = server.start()
    try:
        async with Bridge() as bridge:
            m = bridge.model("llamacpp/qwq-like", base_url=url, thinking_format="think-tags")
            answer = await transfer.answer(m, PROBLEMS[0], "First add.", max_tokens=8)
            empty = await transfer.answer(m, PROBLEMS[0], "", max_tokens=8)
    finally:
        server.stop()
    assert answer.prompt_text is not None and answer.prompt_text.count("<think>") == 1
    assert answer.prompt_text.endswith("<|im_start|>assistant\n<think>\nFirst add.\n</think>\n\n")
    assert empty.prompt_text is not None and empty.prompt_text.endswith("assistant\n<think>\n\n</think>\n\n")


async def test_explain_then_transfer_and_own(llama_server: str, tmp_path: Path) -> None:
    problem = PROBLEMS[1]
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server, thinking_format="think-tags")
        e = await transfer.explain(m, problem, max_tokens=64, answer_max_tokens=24)
        samples = await transfer.explain_samples(m, problem, 2, seed=3, max_tokens=32, answer_max_tokens=16)
        own = await transfer.answer(m, problem, None, max_tokens=24, cot_max_tokens=64)
        transferred = await transfer.answer(m, problem, e, max_tokens=24)
        requests = bridge.stats.requests
        await transfer.explain(m, problem, max_tokens=64, answer_max_tokens=24)
        await transfer.explain_samples(m, problem, 2, seed=3, max_tokens=32, answer_max_tokens=16)
        assert bridge.stats.requests == requests, "a rerun must not touch the network"
    assert isinstance(e, Explanation) and e.cot and e.source_model == "llamacpp/smollm2-135m"
    assert e.prompt_text is not None and e.prompt_text.endswith("<think>\n")
    assert "".join(split_sentences(e.cot)) == e.cot
    assert [s.sample_index for s in samples] == [0, 1] and samples[0].temperature == 1.0
    assert own.mode == "own" and own.text == e.final_text
    assert transferred.mode == "prefill" and transferred.source_model == e.source_model


async def test_context_mode_puts_the_cot_in_the_user_message(faults: FaultServer) -> None:
    async with Bridge() as bridge:
        m = bridge.model("openai-compatible/ok", base_url=faults.base_url)
        answer = await transfer.answer(m, PROBLEMS[0], "Think about it: add them.")
        with pytest.raises(ConfigError, match="cannot take a CoT in 'prefill' mode"):
            await transfer.answer(m, PROBLEMS[0], "x", mode="prefill")
    assert answer.mode == "context"
    user = faults.bodies[-1]["messages"][-1]["content"]
    assert user.startswith(PROBLEMS[0].question) and "Think about it: add them." in user
