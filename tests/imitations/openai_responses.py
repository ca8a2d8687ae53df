"""OpenAI's Responses API (`POST /v1/responses`)."""

from __future__ import annotations

from typing import Any

from tests.imitations import REASONING, digest


def responses_answer(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI Responses API: a reasoning item with a summary, then the message; usage with reasoning tokens."""
    digest_ = digest(body)
    output: list[dict[str, Any]] = []
    if "reasoning" in body:
        summary = [{"type": "summary_text", "text": REASONING}]
        output.append({"type": "reasoning", "id": f"rs_{digest_}", "summary": summary})
    text: dict[str, Any] = {"type": "output_text", "text": f"answer {digest_}", "annotations": []}
    if "message.output_text.logprobs" in (body.get("include") or ()):
        text["logprobs"] = [{"token": "answer", "logprob": -0.25, "bytes": [], "top_logprobs": []}]
    output.append(
        {"type": "message", "id": f"msg_{digest_}", "role": "assistant", "status": "completed", "content": [text]}
    )
    return {
        "id": f"resp_{digest_}",
        "object": "response",
        "status": "completed",
        "model": body.get("model"),
        "output": output,
        "usage": {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 32},
            "total_tokens": 51,
        },
    }
