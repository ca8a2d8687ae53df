"""HTTP transport for one endpoint: an aiohttp session, a bound on in-flight requests, timeouts and retries.

Retries: only transient failures (connection errors, timeouts, malformed bodies, 408, 409, 429, 5xx),
exponential backoff with jitter, never sooner than the server's Retry-After. Every other 4xx fails at once, and so
do a wait asked for that is longer than `max_retry_after_s`, a 429 that says the account has no quota, a redirect
(never followed: a POST would come back as a GET to wherever it points) and a body over `max_response_bytes`.
The final error names the model, the endpoint and the status, never a header or a key.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.payload import BytesPayload
from pydantic_core import to_json
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cotbridge.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    MalformedResponseError,
    ProviderError,
)
from cotbridge.options import RetryPolicy
from cotbridge.providers.ratelimit import limit_wait_s, retry_wait_s
from cotbridge.providers.wire import Wire
from cotbridge.records import BridgeStats

TRANSIENT_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
DEFAULT_MAX_RESPONSE_BYTES = 64 * 2**20
_ERROR_TEXT_LIMIT = 300
# 429s that waiting does not cure: OpenAI's account quota and spend limits (`error.type` or `error.code`).
NO_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)


class TransientFailure(Exception):
    """A failure worth retrying, carrying the error to raise if retries run out and the server's requested wait.

    SDK-based providers raise it from the attempt they hand to `Endpoint.call`; the endpoint retries it."""

    def __init__(self, error: ProviderError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after

    def exhausted(self, attempts: int) -> ProviderError:
        """The error to raise when retries ran out: this failure's, saying how many attempts were made."""
        error = self.error
        return type(error)(
            error.detail, model=error.model, endpoint=error.endpoint, status=error.status, attempts=attempts
        )


def request_payload(body: Any) -> BytesPayload:
    """A request body as a JSON payload: pydantic-core's encoder (compact UTF-8, several times faster than
    `json.dumps` on a chat body), the standard library's for what it refuses (a lone surrogate, an unknown type).
    Made here rather than by aiohttp's JSON payload, which would encode to text and then to bytes again."""
    try:
        data = to_json(body)
    except ValueError:
        data = json.dumps(body).encode()
    return BytesPayload(data, content_type="application/json")


def public_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to show in errors and to use as an identity."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), host.lower(), parts.path.rstrip("/"), "", ""))


def server_root(base_url: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000`: where vLLM and llama.cpp keep /tokenize and /health."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def error_codes(text: str) -> frozenset[str]:
    """The `error.type` and `error.code` of an OpenAI-style error body; empty when it is not one."""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return frozenset()
    if not isinstance(error, dict):
        return frozenset()
    return frozenset(value for value in (error.get("type"), error.get("code")) if isinstance(value, str))


class Endpoint:
    """One server base URL shared by every model served from it.

    `max_concurrency` bounds in-flight requests (vLLM queues without bound and never answers 429) and is also
    the aiohttp connection limit.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        max_concurrency: int,
        timeout_s: float,
        retry: RetryPolicy,
        stats: BridgeStats,
        watch_rate_limit_headers: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self.root_url = server_root(self.base_url)
        self.public_url = public_url(self.base_url)
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retry = retry
        self.stats = stats
        self._api_key = api_key
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial_wait_s, max=retry.max_wait_s, jitter=retry.jitter_s
        )
        # Hosted APIs say in headers when a limit is used up; local servers send none, so they skip the lookups.
        self.watch_rate_limit_headers = watch_rate_limit_headers
        # After a 429 with Retry-After, every request to this endpoint waits, not only the one that got it:
        # a storm of 429s then slows the run down instead of exhausting each request's retries.
        self._paused_until = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No default Content-Type: aiohttp takes it from the payload, and an empty default header set spares
            # a header merge on every request.
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_concurrency, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers=headers,
            )
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "[redacted]")
        return text

    async def _once(
        self, method: str, url: str, body: Any | None, model: str, wire: Wire | None, first: bool = True
    ) -> Any:
        """One attempt. A transient failure of the first attempt hands over to `_retry` (tenacity); the first
        attempt itself runs without tenacity and in this one coroutine frame, because it is the hot path and
        every frame between a caller and the socket is re-entered on each resumption."""
        try:
            session = self._ensure_session()
            assert self._semaphore is not None
            if self._paused_until:
                await self._wait_out_pause()
            async with self._semaphore:
                self.stats.requests += 1
                try:
                    data = None if body is None else request_payload(body)
                    async with session.request(method, url, data=data, allow_redirects=False) as resp:
                        status = resp.status
                        headers = resp.headers
                        limit = self.max_response_bytes
                        if (resp.content_length or 0) > limit:
                            raise self.too_large(model, status, f"{resp.content_length:,} bytes")
                        # Read by chunks to stop at the limit (a compressed body may grow past its length).
                        content = resp.content
                        chunks = []
                        size = 0
                        while chunk := await content.readany():
                            size += len(chunk)
                            if size > limit:
                                resp.close()
                                raise self.too_large(model, status, f"over {limit:,} bytes")
                            chunks.append(chunk)
                        answer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                except TimeoutError as exc:
                    raise self.timeout_failure(model) from exc
                except aiohttp.ClientError as exc:
                    raise self.connection_failure(model, exc) from exc
            if status >= 300:
                raise self.status_failure(status, answer.decode("utf-8", "replace"), headers, model)
            if self.watch_rate_limit_headers:
                self.note_rate_limit_headers(headers)
            if wire is None:
                return answer
            try:
                return wire.parse(answer)
            except ValueError as exc:
                detail = f"response to {urlsplit(url).path} {exc}"
                raise TransientFailure(self.malformed(model, status, detail)) from None
        except TransientFailure as failure:
            if not first:
                raise
            return await self._retry_request(method, url, body, model, wire, failure)
        except ProviderError:
            if first:  # on later attempts `_retry` counts it
                self.stats.errors += 1
            raise

    def _retry_request(
        self, method: str, url: str, body: Any | None, model: str, wire: Wire | None, failure: TransientFailure
    ) -> Awaitable[Any]:
        # Apart from `_once` on purpose: a lambda there would turn its locals into closure cells, which makes
        # every access on the hot path slower (measured: about 10% of requests/s).
        return self._retry(lambda: self._once(method, url, body, model, wire, False), failure)

    async def _wait_out_pause(self) -> None:
        """Waits out a pause after a 429 or a used-up limit. Awaited only while one is set, so the usual request
        spends no coroutine frame on it."""
        if (pause := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(pause)

    def timeout_failure(self, model: str) -> TransientFailure:
        return TransientFailure(
            APITimeoutError(
                f"no answer within {self.timeout_s:g} s; raise timeout_s if the model is slow",
                model=model,
                endpoint=self.public_url,
            )
        )

    def connection_failure(self, model: str, exc: BaseException) -> TransientFailure:
        return TransientFailure(
            APIConnectionError(
                f"connection failed ({type(exc).__name__}: {self.redact(str(exc))[:_ERROR_TEXT_LIMIT]})",
                model=model,
                endpoint=self.public_url,
            )
        )

    def malformed(self, model: str, status: int | None, detail: str) -> MalformedResponseError:
        return MalformedResponseError(self.redact(detail), model=model, endpoint=self.public_url, status=status)

    def too_large(self, model: str, status: int | None, size: str) -> MalformedResponseError:
        return self.malformed(
            model,
            status,
            f"the response is {size}, more than max_response_bytes = {self.max_response_bytes:,}; "
            "a runaway server, or raise the endpoint's max_response_bytes",
        )

    def status_failure(
        self, status: int, text: str, headers: Mapping[str, str], model: str, codes: frozenset[str] | None = None
    ) -> TransientFailure | APIStatusError:
        """The error for an HTTP status that is not a success: transient (with the server's requested wait) or final.

        A 429 that says how long to wait pauses every request to this endpoint, not only the one that got it; a
        wait longer than `max_retry_after_s`, or a 429 for an account without quota, fails at once. `codes`: the
        error's type and code where the caller has them already parsed (SDK errors); else read from `text`."""
        detail = self.redact(text)[:_ERROR_TEXT_LIMIT].strip() or "(empty body)"
        if 300 <= status < 400:
            location = public_url(self.redact(headers.get("Location", "")))
            detail = f"the server redirects to {location or '(no Location)'}; cotbridge does not follow redirects, "
            detail += "so set base_url to the address it points to"
        elif status == 429 and not (codes if codes is not None else error_codes(text)).isdisjoint(NO_QUOTA_CODES):
            detail = f"the account has no quota left (check its plan, credits and spend limits): {detail}"
        elif status in TRANSIENT_STATUSES:
            wait = retry_wait_s(headers)
            if wait is None or wait <= self.retry.max_retry_after_s:
                if status == 429 and wait:
                    self._pause(wait)
                error = APIStatusError(detail, model=model, endpoint=self.public_url, status=status)
                return TransientFailure(error, wait)
            detail = (
                f"the server asked to retry after {wait:.0f} s, more than max_retry_after_s = "
                f"{self.retry.max_retry_after_s:g}: {detail}"
            )
        return APIStatusError(detail, model=model, endpoint=self.public_url, status=status)

    def note_rate_limit_headers(self, headers: Mapping[str, str]) -> None:
        """After a success that used up a provider limit, hold every request until the limit resets."""
        wait = limit_wait_s(headers)
        if wait:
            self._pause(min(wait, self.retry.max_retry_after_s))

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def call(self, attempt: Callable[[], Awaitable[Any]], *, model: str) -> Awaitable[Any]:
        """Runs one SDK call as a request of this endpoint: the pause after a 429, the bound on in-flight requests,
        statistics and retries apply as to the endpoint's own HTTP requests.

        `attempt` performs the call once; it raises TransientFailure for what is worth retrying and a
        ProviderError for the rest (SDK errors translated: no SDK exception leaves cotbridge).
        """
        return self._call_once(attempt, model, True)

    async def _call_once(self, attempt: Callable[[], Awaitable[Any]], model: str, first: bool) -> Any:
        try:
            if self._semaphore is None:
                self._semaphore = asyncio.Semaphore(self.max_concurrency)
            if self._paused_until:
                await self._wait_out_pause()
            async with self._semaphore:
                self.stats.requests += 1
                return await attempt()
        except TransientFailure as failure:
            if not first:
                raise
            return await self._retry(lambda: self._call_once(attempt, model, False), failure)
        except ProviderError:
            if first:
                self.stats.errors += 1
            raise

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self._not_before_retry_after(self._backoff(state), exc if isinstance(exc, TransientFailure) else None)

    def _not_before_retry_after(self, backoff: float, failure: TransientFailure | None) -> float:
        """The backoff, but never sooner than the server's Retry-After (capped at max_retry_after_s)."""
        if failure is not None and failure.retry_after is not None:
            return max(backoff, min(failure.retry_after, self.retry.max_retry_after_s))
        return backoff

    def request(
        self,
        method: str,
        path: str,
        body: Any | None = None,
        *,
        model: str,
        wire: Wire | None,
        root: bool = False,
    ) -> Awaitable[Any]:
        """Sends one request with retries; returns the body checked against `wire` (raw bytes for None) or raises
        a ProviderError. A body outside its wire format is a MalformedResponseError, retried like any glitch.

        `path` is relative to the base URL, or to the server root (the base URL without `/v1`) with root=True.
        A plain function returning the coroutine: one frame fewer on the hot path.
        """
        url = (self.root_url if root else self.base_url) + path
        return self._once(method, url, body, model, wire)

    def attempt(
        self, method: str, path: str, body: Any | None, *, model: str, wire: Wire | None, root: bool = False
    ) -> Awaitable[Any]:
        """One attempt without retries: a transient failure is raised as TransientFailure (a ReplicaSet retries it
        on another server) and is not counted as an error here."""
        url = (self.root_url if root else self.base_url) + path
        return self._once(method, url, body, model, wire, False)

    async def _retry(self, again: Callable[[], Awaitable[Any]], first: TransientFailure) -> Any:
        """Attempts 2..max_attempts (each `again()`) through tenacity, after a first transient failure."""
        last = first
        attempts = 1
        if self.retry.max_attempts > 1:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(TransientFailure),
                stop=stop_after_attempt(self.retry.max_attempts - 1),
                wait=self._wait,
                reraise=True,
            )
            # tenacity waits only between its own attempts; the wait after the first failure is ours.
            await asyncio.sleep(self.backoff_s(1, first))
            try:
                async for attempt in retrying:
                    with attempt:
                        attempts += 1
                        self.stats.retries += 1
                        return await again()
            except TransientFailure as final:
                last = final
            except ProviderError:
                self.stats.errors += 1
                raise
        self.stats.errors += 1
        raise last.exhausted(attempts) from None

    def backoff_s(self, attempts: int, failure: TransientFailure) -> float:
        """The wait after `attempts` failed attempts (the first is ours; tenacity's `_backoff` times the rest):
        exponential with jitter, capped, never sooner than the server's Retry-After."""
        retry = self.retry
        backoff = retry.initial_wait_s * 2 ** (attempts - 1) + random.uniform(0, retry.jitter_s)
        return self._not_before_retry_after(min(backoff, retry.max_wait_s), failure)
