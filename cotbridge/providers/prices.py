"""Default prices of hosted models: the price map bundled with the pinned litellm (`litellm_map.py`). A study file
or `Bridge.model(price=...)` overrides it.

Batch prices (`batch = true` models): the map's `input_cost_per_token_batches` / `output_cost_per_token_batches`
where it has them, else the live price times the provider's `batch.price_factor` in `capabilities.toml` (which
cites the vendor's pricing page). A price given by the user is taken as it is, for batch models too: it is what a
request answered in a batch job costs.

Live prices of batch models (`live_price`): a request whose batch job gave it no result is sent live and billed at
the live price (`cotbridge.providers.sent_live`). With the bundled batch price that is the map's live price of the
model; with a price the user gave (or a model the map prices only for batches) it is that price divided by the
provider's `batch.price_factor` (both vendors bill batches at half the live price, per their pricing pages cited in
capabilities.toml), so a batch price given means the same live price the vendor's discount implies.
"""

from __future__ import annotations

from cotbridge.options import Price
from cotbridge.providers.capabilities import batch_entry
from cotbridge.providers.litellm_map import bundled_price_map, map_entry
from cotbridge.providers.registry import ProviderSpec

__all__ = ["batch_price", "bundled_price_map", "default_price", "live_price"]


def default_price(spec: ProviderSpec, model_id: str) -> Price | None:
    """The bundled price of a hosted model, or None (a local model, an unknown model, no litellm)."""
    return _priced(map_entry(spec.price_map, model_id), "")


def batch_price(spec: ProviderSpec, model_id: str) -> Price | None:
    """The bundled price of a model's requests in its provider's batch API: the map's batch price, else its live
    price times the provider's batch discount; None when the map does not price the model."""
    entry = map_entry(spec.price_map, model_id)
    bundled = _priced(entry, "_batches")
    live = _priced(entry, "")
    batch = batch_entry(spec.name)
    if bundled is not None or live is None or batch is None:
        return bundled
    factor = batch.price_factor
    return Price(input=round(live.input * factor, 6), output=round(live.output * factor, 6))


def live_price(spec: ProviderSpec, model_id: str, batch: Price) -> Price:
    """What a batch model's request sent live costs, `batch` being the price of its batch requests (see the module
    docstring): the map's live price when `batch` is the map's batch price, else `batch` over the provider's
    `batch.price_factor` (`batch` itself for a provider without a batch API)."""
    if batch == batch_price(spec, model_id):
        bundled = default_price(spec, model_id)
        if bundled is not None:
            return bundled
    entry = batch_entry(spec.name)
    if entry is None:
        return batch
    factor = entry.price_factor
    return Price(input=round(batch.input / factor, 6), output=round(batch.output / factor, 6))


def _priced(entry: dict[str, object] | None, suffix: str) -> Price | None:
    if entry is None:
        return None
    per_input = entry.get(f"input_cost_per_token{suffix}")
    per_output = entry.get(f"output_cost_per_token{suffix}")
    if isinstance(per_input, int | float) and isinstance(per_output, int | float):
        return Price(input=round(per_input * 1e6, 6), output=round(per_output * 1e6, 6))
    return None
