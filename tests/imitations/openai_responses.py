"""OpenAI's Responses API (`POST /v1/responses`), after the API reference "Create a model response"
(https://platform.openai.com/docs/api-reference/responses/create), the reasoning guide
(https://developers.openai.com/api/docs/guides/reasoning) and the error codes page
(https://platform.openai.com/docs/guides/error-codes/api-errors).

The model name picks the behaviour, as the real models differ:
  o1*, o3*, o4*, gpt-5*   reasoning models (every other name is a plain model). The effort they run at without
                          `reasoning.effort`: high for gpt-5-pro*, `none` (no reasoning at all: no reasoning item, no
                          reasoning tokens) for gpt-5.1 and later, medium for the rest; an effort a model does not
                          take is a 400 (`unsupported_value`), as is `reasoning.effort` on a plain model
                          (`unsupported_parameter`). While reasoning they refuse `temperature` and `top_p`.
  ...unverified...        the organisation is not verified: a request for a reasoning summary is a 400 naming
                          `param: "reasoning.summary"`
  ...no-quota...          429 `insufficient_quota` (the exact name `no-quota` is the fault server's own, alike)
Every model refuses `max_output_tokens` below 16 (400 `integer_below_min_value`). Reasoning takes REASONING_TOKENS
and the answer ANSWER_TOKENS; a `max_output_tokens` below their sum cuts the response: status `incomplete`,
`incomplete_details.reason = "max_output_tokens"`, and only a reasoning item when the limit ran out while reasoning.
A summary (`reasoning.summary`) comes as one `summary_text` part of the reasoning item; without one the item's
summary is empty.
"""

from __future__ import annotations

import re
from typing import Any

from tests.imitations import REASONING, digest

REASONING_TOKENS = 32
ANSWER_TOKENS = 8
MIN_OUTPUT_TOKENS = 16
_UNVERIFIED = (
    "Your organization must be verified to generate reasoning summaries. Please go to: "
    "https://platform.openai.com/settings/organization/general and click on Verify Organization. If you just "
    "verified, it can take up to 15 minutes for access to propagate."
)
_NO_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
_EFFORTS = {  # (name pattern, efforts taken, default effort); the first match wins
    "gpt-5-pro": (("high",), "high"),
    r"gpt-5\.1": (("none", "low", "medium", "high"), "none"),
    r"gpt-5\.6": (("none", "low", "medium", "high", "xhigh", "max"), "none"),
    r"gpt-5\.\d": (("none", "low", "medium", "high", "xhigh"), "none"),
    "gpt-5": (("minimal", "low", "medium", "high"), "medium"),
    "o": (("low", "medium", "high"), "medium"),
}


class _Refused(Exception):
    """An error answer: its status and the vendor's error object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.status = status
        self.error = error


def _error(status: int, message: str, kind: str, param: str | None, code: str | None) -> _Refused:
    return _Refused(status, {"message": message, "type": kind, "param": param, "code": code})


def _invalid(message: str, param: str, code: str) -> _Refused:
    return _error(400, message, "invalid_request_error", param, code)


def _efforts(model: str) -> tuple[tuple[str, ...], str] | None:
    """The efforts a reasoning model takes and its default; None for a plain model."""
    if not re.match(r"o[134]|gpt-5", model):
        return None
    return next(value for pattern, value in _EFFORTS.items() if re.match(pattern, model))


def _checked_effort(body: dict[str, Any], model: str) -> str | None:
    """The effort the request runs at (None: a plain model), or the 400 the API answers."""
    asked = (body.get("reasoning") or {}).get("effort")
    known = _efforts(model)
    if known is None:
        if asked is not None:
            raise _invalid(
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
                "unsupported_parameter",
            )
        return None
    efforts, default = known
    if asked is not None and asked not in efforts:
        quoted = [f"'{e}'" for e in efforts]
        listed = f"{', '.join(quoted[:-1])}, and {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        raise _invalid(
            f"Unsupported value: '{asked}' is not supported with the '{model}' model. Supported values are: {listed}.",
            "reasoning.effort",
            "unsupported_value",
        )
    return asked or default


def _refusal(body: dict[str, Any], model: str, effort: str | None) -> None:
    """Raises the error the API answers a request with, if any."""
    if "no-quota" in model:
        raise _error(429, _NO_QUOTA, "insufficient_quota", None, "insufficient_quota")
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < MIN_OUTPUT_TOKENS:
        raise _invalid(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    if effort not in (None, "none"):
        for param in ("temperature", "top_p"):
            if param in body:
                raise _invalid(
                    f"Unsupported parameter: '{param}' is not supported with this model.",
                    param,
                    "unsupported_parameter",
                )
    if "unverified" in model and (body.get("reasoning") or {}).get("summary"):
        raise _invalid(_UNVERIFIED, "reasoning.summary", "unsupported_value")


def responses_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and body the Responses API answers `body` with."""
    try:
        return 200, responses_answer(body)
    except _Refused as refused:
        return refused.status, {"error": refused.error}


def responses_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's answer to a request it takes (raises _Refused for one it refuses)."""
    model = str(body.get("model"))
    effort = _checked_effort(body, model)
    _refusal(body, model, effort)
    digest_ = digest(body)
    reasons = effort not in (None, "none")
    limit = body.get("max_output_tokens")
    limit = limit if isinstance(limit, int) else 1 << 30
    reasoning_tokens = min(REASONING_TOKENS, limit) if reasons else 0
    answer_tokens = min(ANSWER_TOKENS, limit - reasoning_tokens)
    cut = reasoning_tokens + answer_tokens < (REASONING_TOKENS if reasons else 0) + ANSWER_TOKENS
    output: list[dict[str, Any]] = []
    if reasons:
        finished = reasoning_tokens == REASONING_TOKENS  # a summary of reasoning the limit cut short never comes
        summary = [{"type": "summary_text", "text": REASONING}] if body["reasoning"].get("summary") and finished else []
        output.append({"type": "reasoning", "id": f"rs_{digest_}", "summary": summary})
    if answer_tokens > 0:
        output.append(_message(body, digest_, "answer" if cut else f"answer {digest_}", cut))
    return {
        "id": f"resp_{digest_}",
        "object": "response",
        "created_at": 1767225600,
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "error": None,
        "model": model,
        "max_output_tokens": body.get("max_output_tokens"),
        "reasoning": {"effort": effort, "summary": (body.get("reasoning") or {}).get("summary")},
        "store": body.get("store", True),
        "output": output,
        "usage": {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reasoning_tokens + answer_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": 11 + reasoning_tokens + answer_tokens,
        },
    }


def _message(body: dict[str, Any], digest_: str, text: str, cut: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    if "message.output_text.logprobs" in (body.get("include") or ()):
        part["logprobs"] = [{"token": "answer", "logprob": -0.25, "bytes": [], "top_logprobs": []}]
    status = "incomplete" if cut else "completed"
    return {"type": "message", "id": f"msg_{digest_}", "role": "assistant", "status": status, "content": [part]}
