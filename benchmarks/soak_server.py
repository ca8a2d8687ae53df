"""A misbehaving OpenAI-compatible chat server for the soak benchmark: deterministic answers, injected faults.

Each good answer depends only on the request body, so a faulty run and a fault-free run give the same answer to
the same request. A share of requests (`--fault-rate`) gets a fault instead, of one of these kinds:
  429-retry-after  429 with `Retry-After: 1`            (transient: decided per attempt)
  429              429 without Retry-After              (transient)
  500              500                                  (transient)
  reset            the connection dropped, no answer    (transient)
  hang             no answer at all; the client's timeout must fire (transient)
  malformed        200 with `choices: ["x"]`            (permanent for that body: the client fails the trial)
  truncated        an answer request cut off at its token cap: empty content, finish_reason "length" (permanent)
A CoT request (max_tokens above `ANSWER_TOKENS_AT_MOST`) is never truncated; its faults come from the other kinds.

Every good answer appends the body's hash to the `--log` file at once (unbuffered), so the log survives a kill -9
of this server and the soak counts what was served across restarts. `GET /stats` gives the live counts.

Plain asyncio, no framework: the server must not be what limits the soak.
    python benchmarks/soak_server.py PORT --fault-rate 0.05 --log served.log
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from collections import Counter

TRANSIENT = ("429-retry-after", "429", "500", "reset", "hang")
PERMANENT = ("malformed", "truncated")
KINDS = TRANSIENT + PERMANENT
ANSWER_TOKENS_AT_MOST = 64  # the soak study asks answers for 32 tokens and CoTs for 256
STATUS_TEXT = {200: b"OK", 404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error"}


def _fraction(text: str) -> float:
    """A number in [0, 1) from a text's hash: the same text always draws the same number."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest()) / 2**64


def fault_for(key: str, attempt: int, rate: float, answer_request: bool) -> str | None:
    """The fault this attempt gets, or None. Permanent kinds are drawn from the body alone, transient ones per
    attempt, so a retried request can pass where a broken one never does."""
    kinds = KINDS if answer_request else tuple(k for k in KINDS if k != "truncated")
    per_kind = rate / len(kinds)
    permanent = [k for k in kinds if k in PERMANENT]
    draw = _fraction(f"{key}:permanent")
    if draw < per_kind * len(permanent):
        return permanent[int(draw / per_kind)]
    transient = [k for k in kinds if k in TRANSIENT]
    draw = _fraction(f"{key}:{attempt}")
    if draw < per_kind * len(transient):
        return transient[int(draw / per_kind)]
    return None


def answer_for(key: str, body: dict[str, object]) -> dict[str, object]:
    """A chat completion derived from the body: CoT requests get reasoning that states its answer, answer requests
    an answer line. The answer is one of 1, 2, 3, so evaluators agree and disagree in countable ways."""
    value = 1 + int(_fraction(key) * 3)
    message: dict[str, object] = {"role": "assistant", "content": f"Answer: {value}"}
    if int(body.get("max_tokens") or 0) > ANSWER_TOKENS_AT_MOST:  # type: ignore[call-overload]
        message["reasoning_content"] = (
            f"Let me look at the numbers of case {key[:8]}. They add up in two steps. So the answer is {value}."
        )
    return {
        "id": f"chatcmpl-{key[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "soak"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
    }


def _truncated(body: dict[str, object]) -> dict[str, object]:
    message = {"role": "assistant", "content": "", "reasoning_content": "Still thinking about it"}
    choice = {"index": 0, "message": message, "finish_reason": "length"}
    return {"object": "chat.completion", "model": body.get("model"), "choices": [choice], "usage": {}}


def _http(status: int, payload: bytes, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status,
        STATUS_TEXT.get(status, b"Status"),
        len(payload),
    )
    return head + extra + b"Connection: keep-alive\r\n\r\n" + payload


class SoakState:
    """Counts shared by every connection: attempts per body and outcomes."""

    def __init__(self, rate: float, log_path: str) -> None:
        self.rate = rate
        self.attempts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def stats(self) -> bytes:
        return json.dumps({"outcomes": dict(self.outcomes)}).encode()


class SoakHTTP(asyncio.Protocol):
    """One client connection; requests are answered in order (clients here never pipeline)."""

    def __init__(self, state: SoakState) -> None:
        self.state = state
        self.buffer = b""
        self.hung = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.hung and (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body, self.buffer = self.buffer[end + 4 : total], self.buffer[total:]
            self._answer(head.split(b" ", 2), body)

    def _answer(self, request_line: list[bytes], raw: bytes) -> None:
        method, path = request_line[0], request_line[1]
        if method == b"GET":
            if path == b"/stats":
                self.transport.write(_http(200, self.state.stats()))
            else:
                self.transport.write(_http(200, b'{"object":"list","data":[{"id":"soak","object":"model"}]}'))
            return
        body = json.loads(raw)
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        state = self.state
        attempt = state.attempts[key]
        state.attempts[key] += 1
        answer_request = int(body.get("max_tokens") or 0) <= ANSWER_TOKENS_AT_MOST
        fault = fault_for(key, attempt, state.rate, answer_request)
        state.outcomes[fault or "ok"] += 1
        if fault == "hang":
            self.hung = True  # the client times out and closes the connection
            return
        if fault == "reset":
            self.transport.abort()
            return
        if fault is None:
            os.write(state.log_fd, key.encode() + b"\n")  # before the answer: a kill between counts it as sent
        self.transport.write(self._reply(fault, key, body))

    @staticmethod
    def _reply(fault: str | None, key: str, body: dict[str, object]) -> bytes:
        if fault == "429-retry-after":
            return _http(429, b'{"error":{"message":"slow down"}}', b"Retry-After: 1\r\n")
        if fault == "429":
            return _http(429, b'{"error":{"message":"slow down"}}')
        if fault == "500":
            return _http(500, b'{"error":{"message":"boom"}}')
        if fault == "malformed":
            return _http(200, b'{"choices":["x"]}')
        if fault == "truncated":
            return _http(200, json.dumps(_truncated(body)).encode())
        return _http(200, json.dumps(answer_for(key, body)).encode())


async def serve(port: int, rate: float, log_path: str) -> None:
    state = SoakState(rate, log_path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SoakHTTP(state), "127.0.0.1", port, backlog=1024)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--log", required=True, help="file the hash of every good answer is appended to")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.fault_rate, args.log))


if __name__ == "__main__":
    main()
