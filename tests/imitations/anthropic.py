"""Anthropic's Messages API (`POST /v1/messages`), answering per model as Anthropic's references describe it.

References followed:
- https://platform.claude.com/docs/en/build-with-claude/thinking-troubleshooting : which model takes which
  `thinking.type` (enabled with budget_tokens only up to 4.6; 4.7 and later refuse it with a 400), where thinking is
  on by default (Claude 5), the `display` defaults ("omitted" from Opus 4.7 on: thinking blocks with an empty
  `thinking` and a signature), and a reply stopped by `max_tokens` while thinking.
- https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking : `thinking = {type: "adaptive",
  display}` and `output_config.effort`.
- https://platform.claude.com/docs/en/build-with-claude/extended-thinking : budget_tokens at least 1024 and below
  max_tokens; temperature and top_k refused while thinking; `redacted_thinking` blocks, and the test string that
  makes the API return one.
- https://platform.claude.com/docs/en/build-with-claude/thinking (section "Sampling parameters"): from Opus 4.7 on
  (and Mythos Preview) a temperature other than the default, top_p or top_k is a 400 on every request.
- https://platform.claude.com/docs/en/api/messages : the request, the answer and the error body.

Thinking spends tokens out of `max_tokens`: a budget's worth (at most THINKING_TOKENS), or by effort in adaptive
mode; a prompt holding HARD_PROBLEM makes adaptive thinking use every token there is. When nothing is left for the
answer the reply stops with `stop_reason: "max_tokens"` and no text block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.imitations import REASONING, digest

# Anthropic's documented test string: a request holding it gets a redacted_thinking block (extended-thinking page).
REDACTED_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
)
HARD_PROBLEM = "[a problem that needs unbounded thinking]"  # the imitation's own marker, not Anthropic's
MIN_BUDGET = 1024
THINKING_TOKENS = 400  # what thinking takes of a budget, at most
ANSWER_TOKENS = 10
EFFORT_TOKENS = {"low": 100, "medium": 200, "high": 400, "xhigh": 600, "max": 800}


@dataclass(frozen=True)
class Contract:
    """What one Claude model takes: budgets (`thinking.type: "enabled"`), adaptive thinking with an effort, whether
    it thinks when the request says nothing, its default `display`, and whether sampling parameters are gone."""

    budgets: bool = True
    adaptive: bool = False
    thinks_by_default: bool = False
    display: str = "summarized"
    sampling_removed: bool = False


ADAPTIVE_ONLY = Contract(budgets=False, adaptive=True, display="omitted", sampling_removed=True)
ALWAYS_ADAPTIVE = Contract(
    budgets=False, adaptive=True, thinks_by_default=True, display="omitted", sampling_removed=True
)
CONTRACTS = {
    "claude-opus-4-6": Contract(adaptive=True),
    "claude-sonnet-4-6": Contract(adaptive=True),
    "claude-opus-4-7": ADAPTIVE_ONLY,
    "claude-opus-4-8": ADAPTIVE_ONLY,
    "claude-mythos-preview": Contract(adaptive=True, thinks_by_default=True, display="omitted", sampling_removed=True),
    "claude-opus-5": ALWAYS_ADAPTIVE,
    "claude-sonnet-5": ALWAYS_ADAPTIVE,
    "claude-fable-5": ALWAYS_ADAPTIVE,
    "claude-mythos-5": ALWAYS_ADAPTIVE,
}
BUDGETS_ONLY = Contract()  # Claude 3.7 to 4.5, and any other model name the fault server is asked for


class Refused(Exception):
    """A 400 invalid_request_error with the message Anthropic gives."""


def contract_for(model: str) -> Contract:
    """The contract of the longest matching model-id prefix."""
    matches = [prefix for prefix in CONTRACTS if model.startswith(prefix)]
    return CONTRACTS[max(matches, key=len)] if matches else BUDGETS_ONLY


def anthropic_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and body Anthropic answers a Messages request with."""
    try:
        return 200, _message(body, contract_for(str(body.get("model"))))
    except Refused as refused:
        return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(refused)}}


def _thinking_spend(body: dict[str, Any], contract: Contract) -> tuple[int | None, str]:
    """Tokens the thinking takes (None: no thinking) and its display; refuses what the model does not take."""
    thinking = body.get("thinking") or {}
    kind = thinking.get("type", "adaptive" if contract.thinks_by_default else "disabled")
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and (not contract.adaptive or effort not in EFFORT_TOKENS):
        raise Refused(f"output_config.effort: {effort!r} is not supported for this model")
    display = thinking.get("display", contract.display)
    if display not in ("summarized", "omitted"):
        raise Refused(f"thinking.display: Input should be 'summarized' or 'omitted', not {display!r}")
    max_tokens = int(body["max_tokens"])
    if kind == "enabled":
        if not contract.budgets:
            raise Refused(
                '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
                '"output_config.effort" to control thinking behavior.'
            )
        budget = int(thinking.get("budget_tokens", 0))
        if budget < MIN_BUDGET:
            raise Refused(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}")
        if budget >= max_tokens:
            raise Refused("`max_tokens` must be greater than `thinking.budget_tokens`")
        return min(budget, THINKING_TOKENS), display
    if kind == "adaptive":
        if not contract.adaptive:
            raise Refused('"thinking.type.adaptive" is not supported for this model.')
        hard = HARD_PROBLEM in str(body.get("messages"))
        return (max_tokens if hard else EFFORT_TOKENS[effort or "high"]), display
    if kind != "disabled":
        raise Refused(f"thinking.type: {kind!r} is not one of 'enabled', 'adaptive', 'disabled'")
    return None, display


def _check_sampling(body: dict[str, Any], contract: Contract, thinking: bool) -> None:
    temperature = body.get("temperature")
    if contract.sampling_removed:
        for name in ("temperature", "top_p", "top_k"):
            if name in body and not (name == "temperature" and temperature == 1):
                raise Refused(f"`{name}` is deprecated for this model.")
    elif thinking:
        if temperature is not None and temperature != 1:
            raise Refused("`temperature` may only be set to 1 when thinking is enabled or in adaptive mode.")
        if "top_k" in body:
            raise Refused("`top_k` is not supported when thinking is enabled.")


def _message(body: dict[str, Any], contract: Contract) -> dict[str, Any]:
    if "max_tokens" not in body:
        raise Refused("max_tokens: Field required")
    spend, display = _thinking_spend(body, contract)
    _check_sampling(body, contract, thinking=spend is not None)
    digest_ = digest(body)
    content: list[dict[str, Any]] = []
    if spend is not None:
        shown = REASONING if display == "summarized" else ""
        content.append({"type": "thinking", "thinking": shown, "signature": f"sig-{digest_}"})
        if REDACTED_TRIGGER in str(body.get("messages")):
            content.append({"type": "redacted_thinking", "data": f"EmwKAhgBEgy-{digest_}"})
    exhausted = (spend or 0) + ANSWER_TOKENS > int(body["max_tokens"])
    if not exhausted:
        content.append({"type": "text", "text": f"answer {digest_}"})
    return {
        "id": f"msg_{digest_}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "max_tokens" if exhausted else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": int(body["max_tokens"]) if exhausted else 45},
    }
