"""The SQLite response cache: canonical request keys, the store, and in-flight de-duplication."""

from cotbridge.cache.inflight import SingleFlight
from cotbridge.cache.keys import KEY_SCHEMA_VERSION, request_key
from cotbridge.cache.store import CachedResponse, ResponseStore

__all__ = ["KEY_SCHEMA_VERSION", "CachedResponse", "ResponseStore", "SingleFlight", "request_key"]
