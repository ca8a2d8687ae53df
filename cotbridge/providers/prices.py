"""Default prices of hosted models: the price map bundled with the pinned litellm (extra `hosted`), read from its
JSON file without importing litellm, and as old as that release. A study file or `Bridge.model(price=...)`
overrides it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from cotbridge.options import Price
from cotbridge.providers.registry import ProviderSpec

PRICE_MAP_FILE = "model_prices_and_context_window_backup.json"


@functools.cache
def bundled_price_map() -> dict[str, Any]:
    """litellm's bundled model map (prices, modes, capabilities), or {} when litellm is not installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / PRICE_MAP_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def default_price(spec: ProviderSpec, model_id: str) -> Price | None:
    """The bundled price of a hosted model, or None (a local model, an unknown model, no litellm)."""
    if spec.price_map is None:
        return None
    prefix, litellm_provider = spec.price_map
    prices = bundled_price_map()
    for key in (prefix + model_id, model_id):
        entry = prices.get(key)
        if not isinstance(entry, dict) or not str(entry.get("litellm_provider", "")).startswith(litellm_provider):
            continue
        per_input, per_output = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if isinstance(per_input, int | float) and isinstance(per_output, int | float):
            return Price(input=round(per_input * 1e6, 6), output=round(per_output * 1e6, 6))
    return None
