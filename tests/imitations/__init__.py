"""Imitations of hosted APIs for tests, one module per vendor, each built from the vendor's API reference (named
in its docstring). They answer as the real API does on the paths cotbridge uses; `tests.fault_server` serves them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

REASONING = "Add 17 and 25. That makes 42."


def digest(body: dict[str, Any]) -> str:
    """A short hash of a request body, so different requests get different answers."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
