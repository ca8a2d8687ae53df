"""Cache keys: sha256 over canonical JSON of everything that decides a response, and nothing secret."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

# Bump when the key material changes shape; old rows then simply stop matching.
KEY_SCHEMA_VERSION = 1

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The standard library's C encoder with `_encode`'s options, made once: `JSONEncoder.encode` makes a new one (and a
# Python closure) on every call, which was half the time of encoding a request body. It keeps no record of the
# containers it is in (`markers` None), so a body that contains itself ends in RecursionError, not in ValueError.
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)  # None where the C accelerator is missing
_c_encoder = (
    _make_c_encoder(None, _unencodable, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    if _make_c_encoder is not None
    else None
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal requests give equal bytes."""
    if _c_encoder is None or isinstance(value, str):
        return _encode(value)
    return "".join(_c_encoder(value, 0))


def request_key(
    *,
    op: str,
    provider: str,
    endpoint: str,
    model: str,
    body: dict[str, Any],
    sample_index: int = 0,
) -> str:
    """The cache key of one request.

    `endpoint` is the endpoint's identity (normalized base URL, or the local model file), `body` the complete
    request body including any extra body. API keys and headers are never part of it. `sample_index` makes
    n samples of one sampled request n distinct rows, so a rerun reuses the same samples.
    """
    return request_key_function(op=op, provider=provider, endpoint=endpoint, model=model)(
        canonical_json(body), sample_index
    )


def request_key_function(*, op: str, provider: str, endpoint: str, model: str) -> Callable[[str, int], str]:
    """`request_key` with everything but the body fixed, for the hot path.

    Takes the body already as canonical JSON (`canonical_json(body)`), so n samples encode it once, and builds the
    canonical JSON of the whole material around it without encoding the rest again.
    """
    # Canonical JSON of the material with sorted keys is: {"body":B,"endpoint":..,"model":..,"op":..,
    # "provider":..,"sample":S,"v":V}; only B and S vary.
    middle = _encode({"endpoint": endpoint, "model": model, "op": op, "provider": provider})[1:-1]
    tail = f',"v":{KEY_SCHEMA_VERSION}}}'
    sha256 = hashlib.sha256

    def key(encoded_body: str, sample_index: int) -> str:
        text = f'{{"body":{encoded_body},{middle},"sample":{sample_index}{tail}'
        return sha256(text.encode()).hexdigest()

    return key
