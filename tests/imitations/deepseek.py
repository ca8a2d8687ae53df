"""DeepSeek's chat completions (`POST /deepseek/v1/chat/completions` on the fault server).

It follows https://api-docs.deepseek.com/guides/thinking_mode (thinking on by default, switched by
`thinking.type`, `reasoning_effort` and how requested efforts map to low / high / max; temperature and the
penalties accepted and ignored while thinking), https://api-docs.deepseek.com/guides/reasoning_model (logprobs and
top_logprobs answered with an error while thinking) and https://api-docs.deepseek.com/quick_start/pricing (the
model ids, with deepseek-chat and deepseek-reasoner as aliases of deepseek-v4-flash's two modes). The reasoning
counts inside `max_tokens`: a limit below the reasoning's length ends with an empty answer and finish_reason
"length". How many tokens a reasoning takes is this imitation's choice; the pages give no figure.
"""

from __future__ import annotations

from typing import Any

from tests.imitations import REASONING, digest

# None: thinks by default and can be switched; True / False: an alias fixed to one mode.
MODELS: dict[str, bool | None] = {
    "deepseek-v4-flash": None,
    "deepseek-v4-pro": None,
    "deepseek-reasoner": True,
    "deepseek-chat": False,
}
EFFORTS = {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high", "max": "max"}
REASONING_TOKENS = {"low": 400, "high": 1200, "max": 3000}
ANSWER = "Answer: 42"
ANSWER_TOKENS = 4
DEFAULT_MAX_TOKENS = 32768


def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def thinks(model: str, body: dict[str, Any]) -> bool | str:
    """Whether the request runs in thinking mode, or the error message of a bad switch."""
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled")):
        return "thinking.type must be enabled or disabled"
    fixed = MODELS[model]
    if fixed is not None:
        return fixed
    return thinking is None or thinking["type"] == "enabled"


def answer(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) of one request."""
    if path != "chat/completions":
        return error(404, f"no route {path}")
    model = str(body.get("model"))
    if model not in MODELS:
        return error(400, "Model Not Exist")
    thinking = thinks(model, body)
    if isinstance(thinking, str):
        return error(400, thinking)
    effort = EFFORTS.get(str(body.get("reasoning_effort") or "high"))
    if effort is None:
        return error(400, "reasoning_effort must be one of low, high, max")
    if thinking and ("logprobs" in body or "top_logprobs" in body):
        return error(400, "logprobs and top_logprobs are not supported in thinking mode")
    return 200, completion(model, body, REASONING_TOKENS[effort] if thinking else 0)


def completion(model: str, body: dict[str, Any], reasoning_tokens: int) -> dict[str, Any]:
    """The answer within `max_tokens`, reasoning first: what the limit leaves after the reasoning is the answer's."""
    limit = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
    spent_reasoning = min(limit, reasoning_tokens)
    left = limit - spent_reasoning
    spent_answer = min(left, ANSWER_TOKENS)
    message: dict[str, Any] = {"role": "assistant", "content": ANSWER[: len(ANSWER) * spent_answer // ANSWER_TOKENS]}
    if reasoning_tokens:
        message["reasoning_content"] = REASONING[: len(REASONING) * spent_reasoning // reasoning_tokens]
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": "stop" if spent_answer == ANSWER_TOKENS else "length",
    }
    if "logprobs" in body:  # only reached outside thinking mode
        choice["logprobs"] = {"content": [{"token": "Answer", "logprob": -0.1, "top_logprobs": []}]}
    prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages") or []) // 4 + 1
    return {
        "id": digest(body),
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": spent_reasoning + spent_answer,
            "total_tokens": prompt + spent_reasoning + spent_answer,
            "completion_tokens_details": {"reasoning_tokens": spent_reasoning},
        },
    }
