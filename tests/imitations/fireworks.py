"""Fireworks' completions (`POST /fireworks/v1/completions` on the fault server).

It follows https://docs.fireworks.ai/api-reference/post-completions: with `echo` the choice's text is the prompt
followed by the generated text, and with `logprobs` the legacy lists (tokens, token_logprobs, text_offset,
token_ids) cover both, the generated token included.
"""

from __future__ import annotations

import re
from typing import Any

from tests.imitations import digest

GENERATED = (" the", -1.25)


def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) of one request."""
    if path != "completions":
        return 404, {"error": {"object": "error", "type": "invalid_request_error", "message": f"no route {path}"}}
    prompt = str(body.get("prompt"))
    echoed = [piece for piece in re.split(r"(?=\s)", prompt) if piece] if body.get("echo") else []
    tokens = [*echoed, GENERATED[0]]
    values: list[float | None] = [None] + [-0.5 - 0.1 * i for i in range(1, len(echoed))] + [GENERATED[1]]
    choice: dict[str, Any] = {"index": 0, "text": "".join(tokens), "finish_reason": "length"}
    if body.get("logprobs") is not None:
        choice["logprobs"] = {
            "tokens": tokens,
            "token_logprobs": values[-len(tokens) :],
            "top_logprobs": None,
            "text_offset": [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))],
            "token_ids": [200 + i for i in range(len(tokens))],
        }
    return 200, {
        "id": digest(body),
        "object": "text_completion",
        "model": body.get("model"),
        "choices": [choice],
        "usage": {"prompt_tokens": len(echoed), "completion_tokens": 1, "total_tokens": len(echoed) + 1},
    }
