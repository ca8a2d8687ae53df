"""The SQLite response cache: canonical request keys, the store, and in-flight de-duplication.

Names are imported on first use, so that the cache's writer process (`cotbridge.cache.writer_process`), which only
writes rows, starts without the store's imports."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cotbridge.cache.inflight import SingleFlight
    from cotbridge.cache.keys import KEY_SCHEMA_VERSION, request_key
    from cotbridge.cache.store import CachedResponse, ResponseStore

_EXPORTS = {
    "SingleFlight": "cotbridge.cache.inflight",
    "KEY_SCHEMA_VERSION": "cotbridge.cache.keys",
    "request_key": "cotbridge.cache.keys",
    "CachedResponse": "cotbridge.cache.store",
    "ResponseStore": "cotbridge.cache.store",
}
__all__ = ["KEY_SCHEMA_VERSION", "CachedResponse", "ResponseStore", "SingleFlight", "request_key"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cotbridge.cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
