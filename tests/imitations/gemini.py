"""Gemini's generateContent (`POST /v1beta/models/MODEL:generateContent`)."""

from __future__ import annotations

from typing import Any

from tests.imitations import REASONING, digest


def gemini_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Gemini generateContent: a thought-summary part when thoughts were asked for, then the text part."""
    digest_ = digest(body)
    parts: list[dict[str, Any]] = []
    if ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts"):
        parts.append({"text": REASONING, "thought": True})
    parts.append({"text": f"answer {digest_}"})
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 20,
            "totalTokenCount": 37,
        },
        "modelVersion": "gemini-2.5-flash",
    }
