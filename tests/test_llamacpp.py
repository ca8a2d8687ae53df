"""Against a real llama.cpp server (xllamacpp) serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cotbridge import Bridge, Completion

ASK = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


async def test_chat_greedy_is_reproducible_and_cached(llama_server: str, tmp_path: Path) -> None:
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        c = await m.chat(ASK, max_tokens=24, seed=0)
        assert isinstance(c, Completion) and c.text and "Paris" in c.text
        assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
        assert c.finish_reason in ("stop", "length") and not c.cached and c.latency_s > 0
        requests = bridge.stats.requests
        again = await m.chat(ASK, max_tokens=24, seed=0)
    assert again.cached and again.text == c.text and bridge.stats.requests == requests


async def test_sampled_chat_gives_n_distinct_cached_samples(llama_server: str, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    messages = [{"role": "user", "content": "Write one short sentence about the sea."}]
    async with Bridge(cache=db) as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        samples = await m.chat(messages, temperature=1.0, n=4, max_tokens=20, seed=7)
    assert len(samples) == 4 and len({s.text for s in samples}) >= 2
    async with Bridge(cache=db) as bridge:
        again = await bridge.model("llamacpp/smollm2-135m", base_url=llama_server).chat(
            messages, temperature=1.0, n=4, max_tokens=20, seed=7
        )
        assert bridge.stats.requests == 0
    assert [s.text for s in again] == [s.text for s in samples]


async def test_score_gives_the_continuations_own_logprobs(llama_server: str) -> None:
    """Scoring the model's own greedy output must give back the log-probs it reported while generating it."""
    async with Bridge() as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        prompt = "The capital of France is"
        generated = await m.complete(prompt, max_tokens=6, logprobs=1)
        assert generated.logprobs
        scored = await m.score(prompt, generated.text)
    assert scored.method == "forced-grammar"
    assert [t.token for t in scored.tokens] == [t.token for t in generated.logprobs]
    for got, want in zip(scored.tokens, generated.logprobs, strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-3)
    assert scored.mean_logprob == pytest.approx(scored.sum_logprob / scored.n_tokens)


async def test_score_on_chat_messages_uses_the_chat_template(llama_server: str) -> None:
    async with Bridge(cache=":memory:") as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        answer = await m.chat(ASK, max_tokens=16, logprobs=1)
        assert answer.logprobs
        scored = await m.score(ASK, answer.text)
        likely = await m.score(ASK, "The capital of France is Paris.")
        unlikely = await m.score(ASK, "Bananas orbit the purple moon.")
        cached = await m.score(ASK, "The capital of France is Paris.")
    assert [t.token for t in scored.tokens] == [t.token for t in answer.logprobs][: scored.n_tokens]
    assert scored.tokens[0].logprob == pytest.approx(answer.logprobs[0].logprob, abs=1e-3)
    assert likely.mean_logprob > unlikely.mean_logprob + 1.0
    assert cached.cached and cached.tokens == likely.tokens


async def test_token_id_prompt_and_assistant_prefill(llama_server: str) -> None:
    async with Bridge() as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        text = await m.complete("The capital of France is", max_tokens=3)
        ids = await m.provider.tokenize("The capital of France is", add_special=True)
        by_ids = await m.complete(ids, max_tokens=3)
        assert by_ids.text == text.text
        prefilled = await m.chat([*ASK, {"role": "assistant", "content": "<think>\nThe question asks"}], max_tokens=12)
    # llama.cpp echoes the prefill; the reasoning starts with it and the final text does not repeat it.
    assert prefilled.reasoning is not None and prefilled.reasoning.startswith("The question asks")


async def test_local_model_starts_and_stops(tmp_path: Path) -> None:
    from tests.conftest import _have_local_model

    if _have_local_model():
        pytest.skip(_have_local_model() or "")
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        m = bridge.model("local/smollm2-135m")
        replies = await asyncio.gather(
            *(m.chat([{"role": "user", "content": f"Say {w}."}], max_tokens=8) for w in ("yes", "no"))
        )
        assert all(r.text for r in replies)
        base_url = m.provider.endpoint.base_url
    port = urlsplit(base_url).port
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the local server still listens after the bridge closed"


async def test_score_a_continuation_spelled_with_byte_tokens(llama_server: str) -> None:
    """llama.cpp's grammar engine rejects byte tokens that are not UTF-8 on their own; such text is forced as text."""
    async with Bridge() as bridge:
        m = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        odd = await m.score("How many are left?", " Seven 겪ower.")
        plain = await m.score("How many are left?", " Seven.")
    assert odd.method == "forced-grammar-text" and plain.method == "forced-grammar"
    assert "".join(t.token for t in odd.tokens).startswith(" Seven") and odd.n_tokens >= 4
