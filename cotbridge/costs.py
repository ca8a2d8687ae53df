"""Token prices and budgets: what a study costs per model and condition, and a limit it never passes.

Prices are USD per million tokens, set per model in the study file or on `Bridge.model`. A hosted model without
one gets the price from the map bundled with the pinned litellm, when the extra `hosted` is installed: read from
its JSON file, without importing litellm, and as old as that release; the study file overrides it. Reasoning
tokens are billed as output tokens, as the hosted APIs do.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotbridge.errors import CotbridgeError
from cotbridge.types import Usage


class BudgetExceeded(CotbridgeError):
    """A request was not sent because it could take the study past its budget; finished work is kept."""


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input (prompt) and output (completion, reasoning included) tokens."""

    input: float
    output: float

    def cost(self, usage: Usage) -> float:
        return (usage.prompt_tokens * self.input + usage.completion_tokens * self.output) / 1e6


class Budget:
    """A spending limit in USD across every priced model of a bridge.

    Before a request, its worst case (`estimated_tokens` all billed at the output price) is reserved; if that
    could pass the limit, the request is refused with BudgetExceeded. After it, the reservation is replaced by
    the real cost. So concurrent requests cannot together overshoot the limit.
    """

    def __init__(self, limit_usd: float) -> None:
        if limit_usd <= 0:
            raise ValueError("a budget must be more than 0 USD")
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0

    def reserve(self, price: Price, estimated_tokens: int, model: str) -> float:
        worst = estimated_tokens * price.output / 1e6
        if self.spent_usd + self.reserved_usd + worst > self.limit_usd:
            raise BudgetExceeded(
                f"{model}: this request could cost up to ${worst:.4f}, and ${self.spent_usd:.4f} of the "
                f"${self.limit_usd:.2f} budget is spent (${self.reserved_usd:.4f} more in flight); raise budget_usd "
                "to go on (finished work is kept and will not be paid for again)"
            )
        self.reserved_usd += worst
        return worst

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved_usd -= reserved
        self.spent_usd += actual


# cotbridge provider -> litellm's provider name in its price map (keys are "<prefix><model id>" or the model id)
_PRICE_MAP_PROVIDERS = {
    "openai": ("", "openai"),
    "anthropic": ("", "anthropic"),
    "gemini": ("gemini/", "gemini"),
    "deepseek": ("deepseek/", "deepseek"),
    "openrouter": ("openrouter/", "openrouter"),
    "together": ("together_ai/", "together_ai"),
    "fireworks": ("fireworks_ai/", "fireworks_ai"),
}
PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"


@functools.cache
def _bundled_price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / PRICE_MAP_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def default_price(model: str) -> Price | None:
    """The bundled price of a hosted `provider/model-id`, or None (local model, unknown model, no litellm)."""
    provider, _, model_id = model.partition("/")
    if provider not in _PRICE_MAP_PROVIDERS:
        return None
    prefix, litellm_provider = _PRICE_MAP_PROVIDERS[provider]
    prices = _bundled_price_map()
    for key in (prefix + model_id, model_id):
        entry = prices.get(key)
        if not isinstance(entry, dict) or not str(entry.get("litellm_provider", "")).startswith(litellm_provider):
            continue
        per_input, per_output = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if isinstance(per_input, int | float) and isinstance(per_output, int | float):
            return Price(input=round(per_input * 1e6, 6), output=round(per_output * 1e6, 6))
    return None
