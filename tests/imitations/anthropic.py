"""Anthropic's Messages API (`POST /v1/messages`)."""

from __future__ import annotations

from typing import Any

from tests.imitations import REASONING, digest


def anthropic_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Anthropic Messages API: a signed thinking block when thinking was asked for, then the text."""
    digest_ = digest(body)
    content: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        content.append({"type": "thinking", "thinking": REASONING, "signature": f"sig-{digest_}"})
    content.append({"type": "text", "text": f"answer {digest_}"})
    return {
        "id": f"msg_{digest_}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": 45},
    }
