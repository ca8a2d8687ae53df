"""Batch mode for hosted models (`batch = true`): a model's concurrent chat requests go to its vendor's batch API
as one job, at the batch price, and each result comes back to its caller as if the live call had returned it.

How: `BatchProvider` wraps the model's live provider and keeps everything of it (names, endpoint identity,
capabilities, `sent_body`), so a batch answer flows through the request pipeline into the same cache rows a live
call fills, and live and batch runs share the cache. Its `chat` collects requests until none has come for
`QUIET_S` (a study starts all requests of a phase at once) or a job is full (`MAX_REQUESTS`, `MAX_JOB_BYTES`),
submits them as one job, stores the job's id with the requests it holds (a `BatchLedger`: the cache file), polls
with backoff from `poll_s` (doubling up to `MAX_POLL_S`), and hands each caller its result. Each request's
`custom_id` is a hash of the request as sent and its sample index (the request pipeline passes it through
`chat_sample`), so a run started again after a kill, or with more samples, finds the job holding that very sample
and polls it: a stored job is never submitted twice, and one sample's result never answers another. A request
without a result (errored, expired, a job the vendor refused or failed) is sent live, and the run's notes
(`BridgeStats.notes`) say how many and why. The vendor bills such a request at the live price, so its response is
marked (`cotbridge.providers.sent_live`): a budget charges it at the model's live price (`prices.live_price`), and a
study's report counts its tokens at that price.

Vendors: `batch_openai.py` (OpenAI's Batch API over /v1/responses), `batch_anthropic.py` (Message Batches).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from cotbridge.errors import APIConnectionError, APIStatusError, APITimeoutError, ConfigError, ProviderError
from cotbridge.providers.base import BaseProvider, Capabilities
from cotbridge.providers.batch_anthropic import AnthropicBatchAPI
from cotbridge.providers.batch_openai import OpenAIBatchAPI
from cotbridge.providers.batch_wire import BatchAPI, BatchLedger, JobState, Outcome
from cotbridge.providers.capabilities import batch_providers
from cotbridge.providers.sdk import SDKProvider
from cotbridge.providers.sent_live import mark_sent_live
from cotbridge.providers.transport import TransientFailure
from cotbridge.providers.wire import CHAT
from cotbridge.records import BridgeStats, ContinuationScore, Message

QUIET_S = 0.25  # a job is sent once no request has come for this long
MAX_REQUESTS = 10_000  # per job (OpenAI takes 50,000, Anthropic 100,000)
MAX_JOB_BYTES = 100 * 2**20  # of request JSON per job (OpenAI takes a 200 MB file, Anthropic 256 MB)
DEFAULT_POLL_S = 10.0  # the first wait between polls of a job
MAX_POLL_S = 300.0  # the longest wait between polls


def check_batch_provider(model: str, provider: str) -> None:
    """Refuses `batch = true` on a provider without a batch API, naming the ones that have one."""
    offered = batch_providers()
    if provider not in offered:
        raise ConfigError(
            f"{model}: batch = true needs a provider with a batch API ({', '.join(f'{p}/' for p in offered)}); "
            f"{provider}/ has none, so remove batch for this model (or study mode = 'batch' applies it only to those)"
        )


def batch_provider(
    inner: SDKProvider, api_key: str, ledger: BatchLedger, stats: BridgeStats, poll_s: float
) -> BatchProvider:
    """The batch form of a hosted model's live provider."""
    check_batch_provider(inner.model_name, inner.name)
    api: BatchAPI
    if inner.name == "openai":
        api = OpenAIBatchAPI(inner.endpoint, api_key, inner.model_name)
    else:
        api = AnthropicBatchAPI(inner.endpoint, api_key, inner.model_name, inner.served_model)
    return BatchProvider(inner, api, ledger, stats, poll_s=poll_s)


@dataclass(slots=True)
class _Collecting:
    """Requests waiting to be sent as one job; each future gets the job's id, or why no job was made."""

    requests: dict[str, tuple[dict[str, Any], asyncio.Future[tuple[str | None, str]]]] = field(default_factory=dict)
    size: int = 0
    last_arrival: float = 0.0


@dataclass(slots=True)
class _Finished:
    """A finished job's results, and why a request without one has none."""

    outcomes: dict[str, Outcome]
    why_missing: str


class BatchProvider(BaseProvider):
    """A hosted model's provider in batch mode (see the module docstring); everything but `chat` is the live
    provider's."""

    def __init__(
        self, inner: SDKProvider, api: BatchAPI, ledger: BatchLedger, stats: BridgeStats, *, poll_s: float
    ) -> None:
        self.inner = inner
        self.api = api
        self.ledger = ledger
        self.stats = stats
        self.poll_s = poll_s
        self.name = inner.name
        self.model_name = inner.model_name
        self.served_model = inner.served_model
        self.endpoint_id = inner.endpoint_id
        self.chat_adds_special = inner.chat_adds_special
        # job id -> (status, done, total), for whoever shows progress
        self.progress: dict[str, tuple[str, int, int]] = {}
        self._collecting = _Collecting()
        self._collector: asyncio.Task[None] | None = None
        self._job_of: dict[str, str] = {}
        self._jobs: dict[str, asyncio.Task[_Finished]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property  # type: ignore[override]
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self.inner.capabilities = value

    # -- the live provider's ------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    def prefill_fields(self) -> dict[str, Any]:
        return self.inner.prefill_fields()

    def sent_body(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sent_body(op, body)

    def completions(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        return self.inner.completions(body)

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        return await self.inner.score(prompt, continuation)

    def estimate_tokens(self, body: dict[str, Any]) -> int:
        return self.inner.estimate_tokens(body)

    async def health(self) -> dict[str, Any]:
        return await self.inner.health()

    async def aclose(self) -> None:
        """Stops collecting and polling (a stored job is polled again by the next run) and closes the provider."""
        for _, future in self._collecting.requests.values():
            if not future.done():
                future.set_exception(ConfigError(f"{self.model_name}: its Bridge closed before the batch job was sent"))
        for task in [*self._tasks, *self._jobs.values()]:
            task.cancel()
        self._tasks.clear()
        self._jobs.clear()
        try:
            await self.api.aclose()
        finally:
            await self.inner.aclose()

    # -- batch mode -----------------------------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        """The request's first sample in the next batch job (see `chat_sample`)."""
        return self.chat_sample(body, 0)

    def chat_sample(self, body: dict[str, Any], sample_index: int) -> Awaitable[dict[str, Any]]:
        """The request's sample `sample_index` in the next batch job (shaped now, so what the vendor cannot take is
        refused at once)."""
        request = self.inner.shape(body)
        return self._chat(body, request, sample_index)

    async def _chat(self, body: dict[str, Any], request: dict[str, Any], sample_index: int) -> dict[str, Any]:
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        custom_id = f"cb-{digest[:40]}-{sample_index}"
        outcome = await self._outcome(custom_id, request)
        if isinstance(outcome, dict):
            try:
                return CHAT.check(self.api.answer(outcome, request))
            except ValueError as exc:
                outcome = f"the result is not a valid answer ({exc})"
        # No result in a job: live (the job's note says so), marked so that it is counted at the live price.
        return mark_sent_live(await self.inner.chat(body), outcome)

    async def _outcome(self, custom_id: str, request: dict[str, Any]) -> Outcome:
        """The request's result from the job holding it (a stored one first: never submitted twice), else from a
        new job; a string says why there is none."""
        job_id = self._job_of.get(custom_id) or self.ledger.job_holding(
            custom_id, provider=self.name, endpoint=self.endpoint_id, model=self.served_model
        )
        if job_id is None:
            job_id, why = await self._enqueue(custom_id, request)
            if job_id is None:
                return why
        finished = await asyncio.shield(self._follow(job_id))
        return finished.outcomes.get(custom_id, finished.why_missing)

    def _enqueue(self, custom_id: str, request: dict[str, Any]) -> asyncio.Future[tuple[str | None, str]]:
        collecting = self._collecting
        if custom_id in collecting.requests:  # the same sample asked twice at once (no cache to share it): one item
            return collecting.requests[custom_id][1]
        future: asyncio.Future[tuple[str | None, str]] = asyncio.get_running_loop().create_future()
        collecting.requests[custom_id] = (request, future)
        collecting.size += len(json.dumps(request))
        collecting.last_arrival = time.monotonic()
        if len(collecting.requests) >= MAX_REQUESTS or collecting.size >= MAX_JOB_BYTES:
            self._send_collected()
        elif self._collector is None:
            self._collector = self._spawn(self._collect())
        return future

    async def _collect(self) -> None:
        """Waits until no request has come for QUIET_S, then sends what was collected."""
        while (quiet := time.monotonic() - self._collecting.last_arrival) < QUIET_S:
            await asyncio.sleep(QUIET_S - quiet)
        self._collector = None
        self._send_collected()

    def _send_collected(self) -> None:
        collected, self._collecting = self._collecting, _Collecting()
        if collected.requests:
            self._spawn(self._submit(collected))

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _submit(self, collected: _Collecting) -> None:
        requests = collected.requests
        try:
            state = await self.api.submit([(custom_id, request) for custom_id, (request, _) in requests.items()])
        except (ProviderError, TransientFailure, ValueError, KeyError) as exc:
            why = f"the vendor did not take the batch job ({_reason(exc)})"
            self.stats.note(f"{self.model_name}: {why}; its {len(requests)} requests were sent live, at the live price")
            for _, future in requests.values():
                if not future.done():
                    future.set_result((None, why))
            return
        self.ledger.record(
            state.job_id,
            provider=self.name,
            endpoint=self.endpoint_id,
            model=self.served_model,
            path=self.api.path,
            status=state.status,
            custom_ids=requests,
        )
        for custom_id, (_, future) in requests.items():
            self._job_of[custom_id] = state.job_id
            if not future.done():
                future.set_result((state.job_id, ""))

    def _follow(self, job_id: str) -> asyncio.Task[_Finished]:
        """The one task that polls a job until it ends and reads its results, shared by every request it holds."""
        task = self._jobs.get(job_id)
        if task is None:
            task = self._jobs[job_id] = asyncio.ensure_future(self._poll(job_id))
        return task

    async def _poll(self, job_id: str) -> _Finished:
        """Polls with backoff until the job ends, then reads its results. A server that fails for a while (after
        the endpoint's retries) is polled again later: giving up would send the whole job live, at twice the price."""
        wait = self.poll_s
        try:
            while True:
                try:
                    state = await self.api.retrieve(job_id)
                    self.progress[job_id] = (state.status, state.done, state.total)
                    self.ledger.update(job_id, state.status)
                    if state.finished:
                        return self._finished(state, await self.api.results(state))
                except ProviderError as exc:
                    if not _passing(exc):
                        raise
                    self.stats.note(f"{self.model_name}: polling batch job {job_id} failed for a while; polled again")
                await asyncio.sleep(wait)
                wait = min(wait * 2, max(MAX_POLL_S, self.poll_s))
        except (ProviderError, ValueError, KeyError) as exc:
            if getattr(exc, "status", None) == 404:
                self.ledger.update(job_id, "gone")
            why = f"batch job {job_id} could not be followed ({_reason(exc)})"
            self.stats.note(f"{self.model_name}: {why}; its requests were sent live, at the live price")
            return _Finished({}, why)

    def _finished(self, state: JobState, outcomes: dict[str, Outcome]) -> _Finished:
        """The job's results; a note for the requests that have none, which are then sent live."""
        why = f"batch job {state.job_id} ended {state.status}" + (f": {state.why}" if state.why else "")
        held = [custom_id for custom_id, job in self._job_of.items() if job == state.job_id]
        failed = {custom_id: outcome for custom_id, outcome in outcomes.items() if isinstance(outcome, str)}
        missing = [custom_id for custom_id in held if custom_id not in outcomes]
        count = len(failed) + len(missing)
        if count:
            reasons = Counter(_kind(text) for text in failed.values())
            if missing:
                reasons[state.status] += len(missing)
            listed = ", ".join(f"{n} {kind}" for kind, n in reasons.most_common())
            total = max(state.total, len(outcomes), len(held))
            self.stats.note(
                f"{self.model_name}: {why}; {count} of its {total} requests have no result ({listed}) and were "
                "sent live, at the live price"
            )
        return _Finished(outcomes, why)


def _passing(exc: ProviderError) -> bool:
    """Whether a failure may pass if asked again later: the network, a timeout, a 429 or a 5xx."""
    if isinstance(exc, APIStatusError):
        return exc.status == 429 or (exc.status or 0) >= 500
    return isinstance(exc, APIConnectionError | APITimeoutError)


def _kind(why: str) -> str:
    return why.partition(":")[0].strip() or "error"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TransientFailure):
        exc = exc.error
    return str(exc)[:300]
