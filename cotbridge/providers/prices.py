"""Default prices of hosted models: the price map bundled with the pinned litellm (`litellm_map.py`). A study file
or `Bridge.model(price=...)` overrides it.
"""

from __future__ import annotations

from cotbridge.options import Price
from cotbridge.providers.litellm_map import bundled_price_map, map_entry
from cotbridge.providers.registry import ProviderSpec

__all__ = ["bundled_price_map", "default_price"]


def default_price(spec: ProviderSpec, model_id: str) -> Price | None:
    """The bundled price of a hosted model, or None (a local model, an unknown model, no litellm)."""
    entry = map_entry(spec.price_map, model_id)
    if entry is None:
        return None
    per_input, per_output = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if isinstance(per_input, int | float) and isinstance(per_output, int | float):
        return Price(input=round(per_input * 1e6, 6), output=round(per_output * 1e6, 6))
    return None
