"""The transport's rules for SDKs that speak HTTP through httpx: a POST never follows a redirect, and a response body
over the endpoint's `max_response_bytes` fails at once, with the same errors and wording as `Endpoint` requests.

httpx follows redirects when its client says so and reads bodies of any size; `ResponseGuard.event_hooks()` given to
an httpx client with `follow_redirects=False` holds it to the rules. The body is asked for uncompressed, so the bytes
counted are the bytes parsed (a compressed body could grow far past its size on the wire): one sent compressed all
the same is refused. The hooks serve httpx (litellm) and its fork httpx2 (the openai SDK from 3.0) alike.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from cotbridge.errors import ProviderError
from cotbridge.providers.transport import Endpoint


class ResponseGuard:
    """httpx event hooks that hold the responses of one model's requests to its endpoint's rules."""

    def __init__(self, endpoint: Endpoint, model: str) -> None:
        self.endpoint = endpoint
        self.model = model

    def event_hooks(self) -> dict[str, list[Callable[..., object]]]:
        """The hooks, as httpx's `event_hooks=` takes them."""
        return {"request": [self.on_request], "response": [self.on_response]}

    async def on_request(self, request: Any) -> None:
        request.headers["Accept-Encoding"] = "identity"  # so that the bytes counted are the bytes parsed

    async def on_response(self, response: Any) -> None:
        """Refuses a redirect and a body over the cap before it is read, and counts the body while it is read."""
        status = response.status_code
        if 300 <= status < 400:
            raise self.endpoint.status_failure(status, "", response.headers, self.model)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            detail = (
                f"the response is compressed ({encoding}) although cotbridge asked for it uncompressed, so its size "
                "cannot be checked against max_response_bytes; a proxy in between may be compressing it"
            )
            raise self.endpoint.malformed(self.model, status, detail)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.endpoint.max_response_bytes:
            raise self.endpoint.too_large(self.model, status, f"{int(declared):,} bytes")
        response.stream = _capped_type(_stream_base(response))(response.stream, self, status)


def _stream_base(response: Any) -> type:
    """The byte-stream class of the library (httpx or httpx2) that made `response`: each reads only its own."""
    return sys.modules[type(response).__module__.partition(".")[0]].AsyncByteStream


@functools.cache
def _capped_type(base: type) -> type[_CappedStream]:
    return type(f"Capped{base.__name__}", (_CappedStream, base), {})


class _CappedStream:
    """A response body that fails once more than the endpoint's `max_response_bytes` of it have come (used as a
    subclass of its library's byte stream, `_capped_type`)."""

    def __init__(self, inner: Any, guard: ResponseGuard, status: int) -> None:
        self.inner = inner
        self.guard = guard
        self.status = status

    async def __aiter__(self) -> AsyncIterator[bytes]:
        limit = self.guard.endpoint.max_response_bytes
        size = 0
        async for chunk in self.inner:
            size += len(chunk)
            if size > limit:
                raise self.guard.endpoint.too_large(self.guard.model, self.status, f"over {limit:,} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def raised_by_guard(exc: BaseException) -> ProviderError | None:
    """The guard's error behind an SDK's exception, or None. SDKs wrap whatever their HTTP client raised in errors
    of their own (litellm makes a refused redirect or an oversized body a retryable 500); the guard's error is in the
    exception's chain, and it is what the caller should get."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ProviderError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
