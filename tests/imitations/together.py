"""Together's completions (`POST /together/v1/completions` on the fault server).

It follows the CompletionResponse schema of Together's API reference
(https://docs.together.ai/reference/completions-1, from https://github.com/togethercomputer/openapi/blob/main/openapi.yaml):
with `echo` the prompt comes back in a top-level `prompt[]` beside the choices, its text starting with the BOS
the model prepends (the schema's own example), and with `logprobs` its tokens, token ids and log-probs, without
text offsets; the choices hold only the generated text. The older schema made `logprobs` 0 or 1 a switch, so 0
gives none here.
"""

from __future__ import annotations

import re
from typing import Any

from tests.imitations import digest

BOS = "<s>"


def prompt_logprobs(prompt: str) -> dict[str, Any]:
    """The BOS and the prompt cut before each space, one log-prob per piece (the first, like a real model's, with
    none to give)."""
    tokens = [BOS] + [piece for piece in re.split(r"(?=\s)", prompt) if piece]
    values: list[float | None] = [None] + [-0.5 - 0.1 * i for i in range(1, len(tokens))]
    return {"tokens": tokens, "token_ids": [1] + [100 + i for i in range(1, len(tokens))], "token_logprobs": values}


def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) of one request."""
    if path != "completions":
        return 404, {"error": {"message": f"no route {path}"}}
    prompt = str(body.get("prompt"))
    logprobs = int(body.get("logprobs") or 0)
    choice: dict[str, Any] = {"index": 0, "text": " the", "finish_reason": "length", "seed": 7}
    if logprobs:
        choice["logprobs"] = {"tokens": [" the"], "token_ids": [279], "token_logprobs": [-1.25]}
    reply: dict[str, Any] = {
        "id": digest(body),
        "object": "text.completion",
        "model": body.get("model"),
        "choices": [choice],
        "prompt": [],
        "usage": {
            "prompt_tokens": len(prompt.split()) + 1,
            "completion_tokens": 1,
            "total_tokens": len(prompt.split()) + 2,
        },
    }
    if body.get("echo"):
        part: dict[str, Any] = {"text": BOS + prompt}
        if logprobs:
            part["logprobs"] = prompt_logprobs(prompt)
        reply["prompt"] = [part]
    return 200, reply
