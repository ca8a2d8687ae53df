"""OpenRouter's chat completions (`POST /openrouter/v1/chat/completions` on the fault server).

It follows https://openrouter.ai/docs/guides/best-practices/reasoning-tokens: reasoning is asked for with a
`reasoning` object (`enabled`, `effort`, `exclude`), and comes back in `message.reasoning` and/or
`message.reasoning_details`, typed reasoning.text, reasoning.summary or reasoning.encrypted, in the shape the
model's vendor gives: an open model's reasoning as reasoning.text; OpenAI's as a summary beside an encrypted
item; an Anthropic model whose thinking is omitted (Claude Opus 4.7 and later) as an encrypted item alone, with no
`reasoning` text. Which Claude models omit it is this imitation's small table, not cotbridge's data.
"""

from __future__ import annotations

from typing import Any

from tests.imitations import REASONING, digest

OMITTING = (
    "anthropic/claude-opus-4.7",
    "anthropic/claude-opus-4.8",
    "anthropic/claude-opus-5",
    "anthropic/claude-sonnet-5",
)


def reasoning_fields(model: str, asked: Any) -> dict[str, Any]:
    """The message's reasoning fields for a model asked with the `reasoning` object `asked`."""
    off = not isinstance(asked, dict) or asked.get("enabled") is False or asked.get("effort") == "none"
    if off or asked.get("exclude"):
        return {}
    sealed = {"type": "reasoning.encrypted", "data": f"enc-{digest({'m': model})}", "index": 1}
    if model.startswith("openai/"):
        summary = {"type": "reasoning.summary", "summary": REASONING, "format": "openai-responses-v1", "index": 0}
        return {"reasoning": REASONING, "reasoning_details": [summary, sealed]}
    if model.startswith(OMITTING):
        return {"reasoning": None, "reasoning_details": [{**sealed, "index": 0}]}
    text = {"type": "reasoning.text", "text": REASONING, "format": "unknown", "index": 0}
    if model.startswith("anthropic/"):
        text = {**text, "signature": f"sig-{digest({'m': model})}", "format": "anthropic-claude-v1"}
    return {"reasoning": REASONING, "reasoning_details": [text]}


def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) of one request."""
    model = str(body.get("model"))
    if path != "chat/completions" or "/" not in model:
        return 400, {"error": {"message": f"{model} is not a valid model ID", "code": 400}}
    message = {"role": "assistant", "content": f"Answer: 42 ({digest(body)})"}
    message.update(reasoning_fields(model, body.get("reasoning")))
    thought = 32 if message.get("reasoning_details") else 0
    return 200, {
        "id": f"gen-{digest(body)}",
        "provider": model.partition("/")[0],
        "model": model,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "native_finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": thought + 6,
            "total_tokens": 12 + thought + 6,
            "completion_tokens_details": {"reasoning_tokens": thought},
        },
    }
