"""What the batch APIs of hosted vendors share: the state of a job, the contract of one vendor's batch API, the
ledger that keeps job ids durably (the cache implements it; providers only know this protocol), and the HTTP calls
of a batch API run as requests of the model's endpoint.

Batch calls go through `Endpoint.call`, so the endpoint's retries (transient failures only, never sooner than
Retry-After), its pause after a 429 and its statistics apply; like `Endpoint` requests they never follow a
redirect and stop reading a body over `max_response_bytes`. They use a session of their own because the vendors
want their own headers (Anthropic's `x-api-key`) and multipart uploads (OpenAI's files).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from cotbridge.providers.transport import Endpoint

# A request's result in a job: the vendor's answer body, or why it has none (errored, expired, ...).
Outcome = dict[str, Any] | str


@dataclass(slots=True)
class JobState:
    """One batch job as the vendor last described it. `finished`: nothing more will happen to it."""

    job_id: str
    status: str
    finished: bool
    done: int = 0
    total: int = 0
    why: str = ""  # what the vendor says went wrong with the whole job, if anything
    raw: dict[str, Any] = field(default_factory=dict)


class BatchAPI(Protocol):
    """One vendor's batch API for one model. `path` is the vendor endpoint the job's requests are for."""

    path: str

    async def submit(self, requests: list[tuple[str, dict[str, Any]]]) -> JobState: ...

    async def retrieve(self, job_id: str) -> JobState: ...

    async def results(self, state: JobState) -> dict[str, Outcome]: ...

    def answer(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class BatchLedger(Protocol):
    """Durable job ids (`cotbridge.cache.batch_jobs.BatchJobStore`): which job holds a request, and each job's
    status, so that a killed run polls its jobs again instead of submitting them twice."""

    def job_holding(self, custom_id: str, *, provider: str, endpoint: str, model: str) -> str | None: ...

    def record(
        self,
        job_id: str,
        *,
        provider: str,
        endpoint: str,
        model: str,
        path: str,
        status: str,
        custom_ids: Iterable[str],
    ) -> None: ...

    def update(self, job_id: str, status: str) -> None: ...


class BatchHTTP:
    """HTTP calls of a batch API, each run as one request of the model's endpoint (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, model: str, headers: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.model = model
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout_s), headers=self._headers
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        payload: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> bytes:
        """The body of a successful response, with the endpoint's retries. `payload` is sent as JSON; `form` makes a
        multipart body (anew for each attempt: a sent FormData cannot be sent again)."""
        return await self.endpoint.call(lambda: self._once(method, url, payload, form), model=self.model)  # type: ignore[no-any-return]

    async def _once(self, method: str, url: str, payload: Any, form: Callable[[], aiohttp.FormData] | None) -> bytes:
        endpoint, model = self.endpoint, self.model
        limit = endpoint.max_response_bytes
        try:
            data = form() if form is not None else None
            async with self._ensure_session().request(
                method, url, json=payload, data=data, allow_redirects=False
            ) as resp:
                if (resp.content_length or 0) > limit:
                    raise endpoint.too_large(model, resp.status, f"{resp.content_length:,} bytes")
                chunks, size = [], 0
                while chunk := await resp.content.readany():
                    size += len(chunk)
                    if size > limit:
                        resp.close()
                        raise endpoint.too_large(model, resp.status, f"over {limit:,} bytes")
                    chunks.append(chunk)
                status, headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise endpoint.timeout_failure(model) from exc
        except aiohttp.ClientError as exc:
            raise endpoint.connection_failure(model, exc) from exc
        body = b"".join(chunks)
        if status >= 300:
            raise endpoint.status_failure(status, body.decode("utf-8", "replace"), headers, model)
        return body

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def jsonl(text: bytes) -> list[dict[str, Any]]:
    """The objects of a JSON Lines body (blank lines skipped; a line that is not an object is an error)."""
    rows = []
    for number, line in enumerate(text.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict):
            raise ValueError(f"line {number} of the results is not a JSON object")
        rows.append(row)
    return rows
