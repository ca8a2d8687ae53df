"""A purpose-built misbehaving OpenAI-compatible server for fault tests (it is not a model).

The `model` field of each request picks the behaviour, so one server covers every fault:
  ok            answers at once with a chat completion derived from the request
  slow          answers after `slow_s` seconds
  flaky-500     answers 500 the first time it sees a request body, then 200
  rate-limited  answers 429 with Retry-After: 1 the first time it sees a request body, then 200
  reset         drops the connection the first time it sees a request body, then 200
  bad-request   answers 400 and echoes the Authorization header it got (so redaction is tested)
  malformed     answers 200 with a body that is not JSON
  hang          never answers within any sane timeout
  empty         answers 200 with an empty message
  reasoner      answers like DeepSeek's reasoner: the reasoning in `reasoning_content`, the answer in `content`
  budget-reasoner
                like reasoner, but its reasoning counts inside `max_tokens` (as DeepSeek's does): below 200 it
                spends them all on reasoning and answers nothing (empty content, finish_reason "length")
  Qwen/QwQ-32B  answers `echo` requests with legacy prompt log-probs, as OpenAI's completions did (every other model
                ignores `echo`, as llama.cpp does)
  limit-used-up answers 200 but says in rate-limit headers that the request limit is used up for 1 s
  limit-429     answers 429 without Retry-After the first time, the reset only in rate-limit headers (1 s)
  retry-after-day / retry-after-date / retry-after-inf
                answer 429 the first time, asking to wait 86400 s, until an HTTP date a day ahead, or `inf`
  no-quota      answers 429 with OpenAI's `insufficient_quota` error, every time
  redirect      answers 302 to /redirected, which serves a chat completion to a GET
  huge          answers 200 with a chat completion of `huge_bytes` bytes, sent in chunks without a length
  body-null, choices-strings, content-parts, usage-many, lone-surrogate
                answer 200 with a body outside the chat format in one way: `null`, `choices: ["x"]`, the content
                as a list of text parts, `prompt_tokens: "many"`, a `\\ud800` escape in the content
Besides the OpenAI chat format it answers in three hosted wire formats (see `tests.imitations`):
OpenAI's Responses API (`POST /v1/responses`), Anthropic's Messages API (`POST /v1/messages`) and Gemini's
generateContent (`POST /v1beta/models/MODEL:generateContent`), each answering each model as its vendor's references
say (reasoning efforts and summaries, thinking modes, display, refusals, budget exhaustion); fault
modes work in every format. Under `/VENDOR/v1/...` it answers as DeepSeek, OpenRouter, Together or Fireworks do
(their `tests.imitations` modules; no fault modes there). The batch APIs of OpenAI (`/v1/files`, `/v1/batches`)
and Anthropic (`/v1/messages/batches`) are answered by `openai_batch` and `anthropic_batch` (attributes of the same
names, which count the jobs created).
Set `unavailable` and it answers 503 to every POST (a replica that is unwell). It counts requests, per model and in
total, and the most requests per model it held at once. Run it in a thread (`FaultServer().start()`) or as a
script: `python tests/fault_server.py PORT`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.imitations import REASONING, deepseek, fireworks, openrouter, together
from tests.imitations.anthropic import anthropic_reply
from tests.imitations.anthropic_batch import AnthropicBatchImitation
from tests.imitations.gemini import gemini_reply
from tests.imitations.openai_batch import OpenAIBatchImitation
from tests.imitations.openai_responses import responses_reply

ECHO_MODEL = "Qwen/QwQ-32B"  # the one model whose `echo` requests get prompt log-probs
# Hosted APIs answered under /VENDOR/v1/..., each by its imitation: (path after v1/, body) -> (status, body).
VENDORS = {
    "deepseek": deepseek.answer,
    "fireworks": fireworks.answer,
    "openrouter": openrouter.answer,
    "together": together.answer,
}


def echo_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """Legacy completions `echo` log-probs (OpenAI's, without the generated token): the prompt cut at spaces, one
    log-prob per piece (the first, like a real server's, without one)."""
    prompt = str(body["prompt"])
    tokens = [piece for piece in re.split(r"(?=\s)", prompt) if piece]
    offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    values = [None] + [-0.5 - 0.1 * i for i in range(1, len(tokens))]
    return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": None}


def completion_for(body: dict[str, Any]) -> dict[str, Any]:
    """A deterministic answer that depends on the request, so different requests get different texts."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    n = int(body.get("n") or 1)
    if "messages" in body:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": f"answer {digest} #{i}"},
                "finish_reason": "stop",
            }
            for i in range(n)
        ]
        obj = "chat.completion"
    elif body.get("echo") and body.get("model") == ECHO_MODEL:
        choices = [{"index": 0, "text": body["prompt"], "finish_reason": "length", "logprobs": echo_logprobs(body)}]
        obj = "text_completion"
    else:
        choices = [{"index": i, "text": f" text {digest} #{i}", "finish_reason": "length"} for i in range(n)]
        obj = "text_completion"
    return {
        "id": f"cmpl-{digest}",
        "object": obj,
        "model": body.get("model"),
        "choices": choices,
        "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n, "total_tokens": 7 + 3 * n},
    }


DAY_S = 86400


def malformed_body(model: str, reply: dict[str, Any]) -> bytes | None:
    """The body of one of the malformed-200 behaviours (see the module docstring); None for other models."""
    if model == "body-null":
        return b"null"
    if model == "choices-strings":
        reply["choices"] = ["x"]
    elif model == "content-parts":
        text = reply["choices"][0]["message"]["content"]
        reply["choices"][0]["message"]["content"] = [{"type": "text", "text": text}, {"type": "text", "text": "!"}]
    elif model == "usage-many":
        reply["usage"]["prompt_tokens"] = "many"
    elif model == "lone-surrogate":
        reply["choices"][0]["message"]["content"] = "half SURROGATE"
        return json.dumps(reply).replace("SURROGATE", "\\ud800").encode()
    else:
        return None
    return json.dumps(reply).encode()


class FaultServer:
    def __init__(self, slow_s: float = 0.05, huge_bytes: int = 3 * 2**20) -> None:
        self.slow_s = slow_s
        self.huge_bytes = huge_bytes
        self.redirect_gets = 0
        self.unavailable = False
        self.requests: Counter[str] = Counter()
        self.total = 0
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []  # of the requests in `bodies`
        self._seen: Counter[str] = Counter()
        self.openai_batch = OpenAIBatchImitation()
        self.anthropic_batch = AnthropicBatchImitation()
        self._lock = threading.Lock()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.total = 0
            self.max_in_flight.clear()
            self.bodies.clear()
            self.content_types.clear()
            self.auth_headers.clear()
            self._seen.clear()
            self.redirect_gets = 0
            self.openai_batch.reset()
            self.anthropic_batch.reset()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/v1/completions", self.handle)
        app.router.add_post("/v1/responses", self.handle)
        app.router.add_post("/v1/messages", self.handle)
        app.router.add_post("/v1beta/models/{target}", self.handle)
        app.router.add_post("/{vendor}/v1/{path:.+}", self.handle)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/redirected", self.redirected)
        app.router.add_get("/stats", self.stats)
        self.openai_batch.add_routes(app)
        self.anthropic_batch.add_routes(app)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "ok", "object": "model"}]})

    async def redirected(self, request: web.Request) -> web.Response:
        self.redirect_gets += 1
        return web.json_response(completion_for({"model": "redirected", "messages": []}))

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"total": self.total, "requests": dict(self.requests)})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        target = request.match_info.get("target", "")
        model = target.partition(":")[0] if target else str(body.get("model"))
        fingerprint = hashlib.sha256(raw).hexdigest()
        with self._lock:
            self.total += 1
            self.requests[model] += 1
            self._seen[fingerprint] += 1
            first_time = self._seen[fingerprint] == 1
            self.in_flight[model] += 1
            self.max_in_flight[model] = max(self.max_in_flight[model], self.in_flight[model])
            self.auth_headers.append(
                request.headers.get("Authorization")
                or request.headers.get("x-api-key")
                or request.headers.get("x-goog-api-key", "")
            )
            self.bodies.append(body)
            self.content_types.append(request.headers.get("Content-Type", ""))
        try:
            return await self._respond(request, model, body, first_time)
        finally:
            with self._lock:
                self.in_flight[model] -= 1

    async def _respond(
        self, request: web.Request, model: str, body: dict[str, Any], first_time: bool
    ) -> web.StreamResponse:
        if self.unavailable:
            return web.json_response({"error": {"message": "unavailable"}}, status=503)
        if (vendor := request.match_info.get("vendor")) is not None:
            status, reply = VENDORS[vendor](request.match_info["path"], body) if vendor in VENDORS else (404, {})
            return web.json_response(reply, status=status)
        if model == "slow":
            await asyncio.sleep(self.slow_s)
        elif model == "flaky-500" and first_time:
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        elif model == "rate-limited" and first_time:
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "1"})
        elif model == "reset" and first_time:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        elif model == "bad-request":
            message = f"bad request; you sent Authorization={request.headers.get('Authorization', '')}"
            return web.json_response({"error": {"message": message}}, status=400)
        elif model == "malformed":
            return web.Response(status=200, text='{"choices": [', content_type="application/json")
        elif model == "empty":
            reply = completion_for(body)
            reply["choices"][0]["message"]["content"] = ""
            return web.json_response(reply)
        elif model in ("reasoner", "deepseek-reasoner"):
            reply = completion_for(body)
            for choice in reply["choices"]:
                choice["message"]["reasoning_content"] = REASONING
                choice["message"]["content"] = "Answer: 42"
            return web.json_response(reply)
        elif model == "budget-reasoner":
            reply = completion_for(body)
            cut = int(body.get("max_tokens") or 0) < 200
            for choice in reply["choices"]:
                choice["message"]["reasoning_content"] = REASONING
                choice["message"]["content"] = "" if cut else "Answer: 42"
                choice["finish_reason"] = "length" if cut else "stop"
            return web.json_response(reply)
        elif model == "hang":
            await asyncio.sleep(3600)
        elif model == "limit-used-up":
            reset = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
            status, reply = self._answer(request, model, body)
            return web.json_response(reply, status=status, headers=reset)
        elif model.startswith("retry-after-") and first_time:
            wait = {"day": str(DAY_S), "inf": "inf"}.get(model[len("retry-after-") :])
            wait = wait or (datetime.now(UTC) + timedelta(seconds=DAY_S)).strftime("%a, %d %b %Y %H:%M:%S GMT")
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": wait})
        elif model == "no-quota":
            error = {"message": "You exceeded your current quota", "type": "insufficient_quota"}
            return web.json_response({"error": {**error, "code": "insufficient_quota"}}, status=429)
        elif model == "redirect":
            raise web.HTTPFound(f"{self.root_url}/redirected")
        elif model == "huge":
            return await self._huge(request, body)
        elif (bad := malformed_body(model, completion_for(body))) is not None:
            return web.Response(body=bad, content_type="application/json")
        elif model == "limit-429" and first_time:
            when = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()  # Anthropic sends an RFC 3339 time
            reset = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": when}
            return web.json_response({"error": {"message": "rate limited"}}, status=429, headers=reset)
        status, reply = self._answer(request, model, body)
        return web.json_response(reply, status=status)

    async def _huge(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """A chat completion padded to `huge_bytes`, streamed in 64 KiB chunks with no Content-Length."""
        head = json.dumps(completion_for(body))[:-1].encode() + b', "padding": "'
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(head)
        chunk = b"x" * 65536
        try:
            for _ in range(self.huge_bytes // len(chunk) + 1):
                await response.write(chunk)
            await response.write(b'"}')
        except (ConnectionResetError, RuntimeError):
            pass  # the client stopped reading, as it should
        return response

    @staticmethod
    def _answer(request: web.Request, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and body in the wire format of the path asked (OpenAI's Responses API, Anthropic and Gemini
        refuse, per model, what their references say those models refuse)."""
        if request.path.endswith("/responses"):
            return responses_reply(body)
        if request.path.endswith("/messages"):
            return anthropic_reply(body)
        if request.path.endswith(":generateContent"):
            return gemini_reply(model, body)
        return 200, completion_for(body)

    def start(self) -> FaultServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            self._runner = runner
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        threading.Thread(target=run, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


def closed_port_url() -> str:
    """The base URL of a port nothing listens on (bound, then released): a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


if __name__ == "__main__":
    server = FaultServer()
    server.port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server.start()
    print(server.base_url, flush=True)
    while True:
        time.sleep(3600)
