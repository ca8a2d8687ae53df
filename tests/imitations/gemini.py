"""Gemini's generateContent (`POST /v1beta/models/MODEL:generateContent`), answering per model as Google's references
describe it.

References followed:
- https://ai.google.dev/gemini-api/docs/thinking : `thinkingConfig` with `thinkingBudget` for Gemini 2.5 (Pro: 128 to
  32768 or -1, cannot be turned off; Flash: 0 to 24576 or -1) and `thinkingLevel` for Gemini 3 (which keeps
  `thinkingBudget` only for backward compatibility; both in one request is an error), `includeThoughts` for
  thought summaries (parts with `thought: true`), thinking tokens counted in `thoughtsTokenCount`.
- https://ai.google.dev/gemini-api/docs/gemini-3 : the thinking levels, default high; Gemini 3 Pro takes low and
  high only.
- https://ai.google.dev/api/generate-content : the request (`generationConfig.maxOutputTokens`), the candidate's
  `finishReason` (`MAX_TOKENS` when the output limit cut it off) and the error body.

Thinking spends tokens out of the output limit: the budget, or by level; a prompt holding HARD_PROBLEM makes it use
every token there is. When nothing is left for the answer the candidate ends with `MAX_TOKENS` and no text part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.imitations import REASONING, digest

HARD_PROBLEM = "[a problem that needs unbounded thinking]"  # the imitation's own marker, not Google's
ANSWER_TOKENS = 5
DYNAMIC_TOKENS = 300  # what thinkingBudget -1 (dynamic) or a model's default takes
LEVEL_TOKENS = {"minimal": 50, "low": 150, "medium": 300, "high": 600}


@dataclass(frozen=True)
class Contract:
    """How one Gemini model is asked to think: a budget range (None: it takes levels) or the levels it takes."""

    budgets: tuple[int, int] | None = None  # the accepted thinkingBudget range, besides -1
    levels: tuple[str, ...] = ()


CONTRACTS = {
    "gemini-2.5-pro": Contract(budgets=(128, 32768)),
    "gemini-2.5-flash": Contract(budgets=(0, 24576)),
    "gemini-3-pro": Contract(levels=("low", "high")),
    "gemini-3": Contract(levels=("minimal", "low", "medium", "high")),
}
OTHER = Contract(budgets=(0, 24576))  # any other model name the fault server is asked for


class Refused(Exception):
    """A 400 INVALID_ARGUMENT with Google's message."""


def contract_for(model: str) -> Contract:
    matches = [prefix for prefix in CONTRACTS if model.startswith(prefix)]
    return CONTRACTS[max(matches, key=len)] if matches else OTHER


def gemini_reply(model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status and body Gemini answers a generateContent request for `model` with."""
    try:
        return 200, _answer(model, body, contract_for(model))
    except Refused as refused:
        return 400, {"error": {"code": 400, "message": str(refused), "status": "INVALID_ARGUMENT"}}


def _field(config: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by either of its JSON names (the API's proto JSON parsing takes both)."""
    return config.get(camel, config.get(snake))


def _thinking_spend(body: dict[str, Any], contract: Contract, limit: int | None) -> int:
    config = _field(body.get("generationConfig") or {}, "thinkingConfig", "thinking_config") or {}
    budget = _field(config, "thinkingBudget", "thinking_budget")
    level = _field(config, "thinkingLevel", "thinking_level")
    if budget is not None and level is not None:
        raise Refused("thinking_budget and thinking_level cannot be set at the same time.")
    if level is not None:
        if str(level).lower() not in contract.levels:
            raise Refused(f"Thinking level {level} is not supported for this model.")
        spend = LEVEL_TOKENS[str(level).lower()]
    elif budget is not None and budget != -1 and contract.budgets is not None:
        low, high = contract.budgets
        if not low <= budget <= high:
            raise Refused(f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}.")
        spend = budget
    else:
        spend = DYNAMIC_TOKENS if contract.budgets is not None else LEVEL_TOKENS["high"]
    if HARD_PROBLEM in str(body.get("contents")) and limit is not None:
        spend = limit
    return spend


def _answer(model: str, body: dict[str, Any], contract: Contract) -> dict[str, Any]:
    generation = body.get("generationConfig") or {}
    limit = _field(generation, "maxOutputTokens", "max_output_tokens")
    spend = _thinking_spend(body, contract, limit)
    config = _field(generation, "thinkingConfig", "thinking_config") or {}
    parts: list[dict[str, Any]] = []
    if _field(config, "includeThoughts", "include_thoughts"):
        parts.append({"text": REASONING, "thought": True})
    exhausted = limit is not None and spend + ANSWER_TOKENS > int(limit)
    if not exhausted:
        parts.append({"text": f"answer {digest(body)}"})
    shown = 0 if exhausted else ANSWER_TOKENS
    thoughts = int(limit or 0) if exhausted else 20
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": "MAX_TOKENS" if exhausted else "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": shown,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": 12 + shown + thoughts,
        },
        "modelVersion": model,
    }
