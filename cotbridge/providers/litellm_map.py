"""The model map bundled with the pinned litellm (extra `hosted`): prices, modes and capabilities per model, read
from its JSON file without importing litellm, and as old as that release."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

MAP_FILE = "model_prices_and_context_window_backup.json"
CHAT_MODES = frozenset({"chat", "responses"})  # openai/ models go through the Responses API


@functools.cache
def bundled_price_map() -> dict[str, Any]:
    """litellm's bundled model map, or {} when litellm is not installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / MAP_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def map_entries(price_map: tuple[str, str] | None, model_id: str) -> list[dict[str, Any]]:
    """The map's entries of a model, the provider-prefixed key's first: a key is the provider's prefix and the id
    (or the bare id) and an entry's `litellm_provider` is the provider's. Empty when the provider has no place in
    the map or the model is absent. The two keys of one model can disagree (gemini-exp-1206 in 1.110.2)."""
    if price_map is None:
        return []
    prefix, litellm_provider = price_map
    entries = bundled_price_map()
    found = []
    for key in dict.fromkeys((prefix + model_id, model_id)):
        entry = entries.get(key)
        if isinstance(entry, dict) and str(entry.get("litellm_provider", "")).startswith(litellm_provider):
            found.append(entry)
    return found


def map_entry(price_map: tuple[str, str] | None, model_id: str) -> dict[str, Any] | None:
    """The first of `map_entries`, or None."""
    found = map_entries(price_map, model_id)
    return found[0] if found else None
