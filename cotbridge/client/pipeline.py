"""The request pipeline of one model: cache lookup -> in-flight sharing -> budget -> send -> split -> store.

Every request of a Model goes through here, and every hot-path trick lives here: a warm single-sample hit is
answered with an already finished future (no coroutine, no task), a single sample that missed is fetched, shared
and stored in one coroutine (`_fetch_one`), the cache-off path skips the pipeline's own frames, and cache keys are
built around the body's canonical JSON once. A response is committed to the cache before its caller sees it, so a
killed run loses nothing that came back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from cotbridge.cache.inflight import LeaderLeft, SingleFlight
from cotbridge.cache.keys import canonical_json, request_key_function
from cotbridge.cache.store import CachedResponse, ResponseRecord, ResponseStore, json_text
from cotbridge.client.budget import Budget
from cotbridge.errors import ConfigError, MalformedResponseError
from cotbridge.formats import split_reasoning
from cotbridge.options import Price
from cotbridge.providers.base import Provider
from cotbridge.providers.ratelimit import RateLimiter
from cotbridge.providers.response import first_choice_fields, is_cacheable_choice, parse_logprobs, parse_usage
from cotbridge.providers.sent_live import sent_live, stored_sent_live
from cotbridge.records import BridgeStats, Completion, Usage

# A computed operation (score, render, tokenize): produces the JSON to cache instead of a server response.
Compute = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class SampleResult:
    """One sample's outcome, fresh from the server or read from the cache, in the shape both share."""

    raw: dict[str, Any] | str  # the response, or its JSON text from the cache
    latency_s: float
    cached: bool
    content: str | None
    reasoning: str | None
    finish_reason: str | None
    logprobs: Any  # the wire object, its JSON text from the cache, or None
    usage: Usage

    @classmethod
    def fresh(cls, response: dict[str, Any], latency_s: float, text: str | None = None) -> SampleResult:
        """`text`: the response's JSON, when it was encoded for the cache (then the result holds it, not the dict)."""
        content, reasoning, finish_reason, logprobs = first_choice_fields(response)
        raw = response if text is None else text
        return cls(raw, latency_s, False, content, reasoning, finish_reason, logprobs, parse_usage(response))

    @classmethod
    def from_cache(cls, hit: CachedResponse) -> SampleResult:
        response, latency_s, content, reasoning, finish_reason, logprobs, prompt, completion, thinking = hit
        if stored_sent_live(response):  # a batch model's request sent live: its tokens cost the live price
            usage = Usage(prompt, completion, thinking, prompt, completion)
        else:
            usage = Usage(prompt, completion, thinking)
        return cls(response, latency_s, True, content, reasoning, finish_reason, logprobs, usage)

    @property
    def payload(self) -> dict[str, Any]:
        """The response (or a computed operation's JSON) as a dict, parsed from the cache's text when needed."""
        return json.loads(self.raw) if isinstance(self.raw, str) else self.raw

    def shared(self) -> SampleResult:
        """The same result as seen by a caller that joined another caller's request (marked cached)."""
        return SampleResult(
            self.raw, self.latency_s, True, self.content, self.reasoning, self.finish_reason, self.logprobs, self.usage
        )


def split_usage(usage: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """One response's usage shared out over its `count` samples, so that the samples' usages add up to it (servers
    report one total for all choices)."""
    shares: list[dict[str, Any]] = [{} for _ in range(count)]
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(name)
        if isinstance(value, int):
            for i in range(count):
                shares[i][name] = value // count + (1 if i < value % count else 0)
    return shares


def split_samples(
    response: dict[str, Any], count: int, computed: bool, provider: Provider, stats: BridgeStats
) -> list[dict[str, Any]]:
    """Splits a response into one response per sample (each with its own single choice); counts its tokens in
    `stats`. A computed operation's JSON is one sample as it is."""
    if computed:
        return [response]
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or len(choices) < count:
        got = len(choices) if isinstance(choices, list) else 0
        raise MalformedResponseError(
            f"asked for {count} choice(s), the response has {got}",
            model=provider.model_name,
            endpoint=str(provider.endpoint_id),
        )
    usage = response.get("usage")
    if usage:
        stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        stats.completion_tokens += int(usage.get("completion_tokens") or 0)
    if count == 1:
        return [response]
    head = {k: v for k, v in response.items() if k != "choices" and k != "usage"}
    choices = sorted(choices, key=lambda c: c.get("index", 0))
    shares = split_usage(usage or {}, count)
    pairs = zip(choices[:count], shares, strict=True)
    return [{**head, "usage": share, "choices": [{**c, "index": 0}]} for c, share in pairs]


def records_to_store(
    provider: Provider,
    op: str,
    request: str,
    keys: Sequence[str],
    indices: Sequence[int],
    per_sample: list[dict[str, Any]],
    results: list[SampleResult],
    computed: bool,
) -> list[ResponseRecord]:
    """The cache rows of one call's good samples (errors, refusals and empty outputs are not cached). `request`: the
    request body's JSON, encoded once for all samples; each result holds its response's JSON (`SampleResult.fresh`)."""
    name, endpoint, model = provider.name, provider.endpoint_id, provider.served_model
    return [  # (positional: a record made by keywords costs twice as much)
        ResponseRecord(
            key,
            op,
            name,
            endpoint,
            model,
            index,
            request,
            result.raw,
            result.latency_s,
            result.usage.prompt_tokens,
            result.usage.completion_tokens,
            result.usage.reasoning_tokens,
            result.content,
            result.reasoning,
            result.finish_reason,
            result.logprobs,
        )
        for key, index, resp, result in zip(keys, indices, per_sample, results, strict=True)
        if computed or is_cacheable_choice(resp["choices"][0])
    ]


def cached_results(
    store: ResponseStore, keys: list[str], counted_as: tuple[str, str], stats: BridgeStats
) -> list[SampleResult | None]:
    """The stored result of each key, None where it is missing (each hit counted for `counted_as`)."""
    results: list[SampleResult | None] = [None] * len(keys)
    for i, key in enumerate(keys):
        hit = store.get(key, counted_as)
        if hit is not None:
            results[i] = SampleResult.from_cache(hit)
            stats.cache_hits += 1
    return results


def sample_batches(provider: Provider, indices: list[int]) -> list[list[int]]:
    """Samples per network call: all in one call (`n`), or, where the API has no `n`, one call per sample, each
    stored as it arrives so a failure of one loses none of the others."""
    if provider.capabilities.n_samples or len(indices) == 1:
        return [indices]
    return [[i] for i in indices]


def completion_of(result: SampleResult, model: str, index: int, prefill: str | None, chat: bool) -> Completion:
    """The record a caller gets for one sample of `model`: a chat's reasoning split from its text (field, inline
    tags or prefill)."""
    if chat:
        text, reasoning = split_reasoning(result.content, result.reasoning, prefill)
    else:
        text, reasoning = result.content or "", None
    logprobs = result.logprobs
    if isinstance(logprobs, str):
        logprobs = json.loads(logprobs)
    return Completion(
        text=text,
        reasoning=reasoning,
        finish_reason=result.finish_reason,
        usage=result.usage,
        model=model,
        cached=result.cached,
        latency_s=result.latency_s,
        sample_index=index,
        logprobs=parse_logprobs(logprobs) if logprobs else None,
        _raw=result.raw,
    )


def completions_of(results: list[SampleResult], model: str, prefill: str | None, chat: bool) -> list[Completion]:
    return [completion_of(result, model, i, prefill, chat) for i, result in enumerate(results)]


class RequestPipeline:
    """Runs one model's requests: `submit` for chat and completions, `results` for everything else.

    The store, the in-flight table, the statistics and the budget belong to the bridge and are shared by every
    model on it; the provider may be shared too (models that differ only in options)."""

    def __init__(
        self,
        provider: Provider,
        *,
        store: ResponseStore | None,
        inflight: SingleFlight[Any],
        stats: BridgeStats,
        budget: Budget | None,
        price: Price | None,
        limiter: RateLimiter | None = None,
        live_price: Price | None = None,
    ) -> None:
        self.provider = provider
        self.model_name = provider.model_name
        self.store = store
        self.inflight = inflight
        self.stats = stats
        self.budget = budget if price is not None else None
        self.price = price
        self.live_price = live_price or price  # a batch model's: what a request its job did not answer costs
        self.limiter = limiter
        self.closed = False
        self._started = False
        self._key_functions: dict[str, Callable[[str, int], str]] = {}
        # Cache hits are counted per (provider, model) for `cotbridge cache stats`.
        self._stats_key = (provider.name, provider.served_model)

    def close(self) -> None:
        """Refuses every later request: after its bridge closed, a model must not run without the cache it had."""
        self.closed = True

    def _refuse_closed(self) -> None:
        raise ConfigError(
            f"{self.provider.model_name}: its Bridge is closed (aclose() ran or its `async with` ended), and with it "
            "the cache and connections; open a new Bridge"
        )

    async def start(self) -> None:
        """Starts the provider's server where it has one (the embedded model); a no-op afterwards."""
        if self.closed:
            self._refuse_closed()
        if not self._started:
            await self.provider.start()
            self._started = True

    def submit(self, op: str, body: dict[str, Any], n: int, prefill: str | None) -> Awaitable[Any]:
        """A chat or completion request (await it): one Completion, or a list of n. `prefill`: the final assistant
        message a chat continues (reasoning it opened belongs to the completion's reasoning).

        A stored single sample comes back as an already finished future: nothing for the event loop to schedule
        (the warm-cache hot path). A hit needs no server, not even a local one started."""
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        if self.closed:
            self._refuse_closed()
        store = self.store
        if store is not None and n == 1:
            encoded = canonical_json(self.provider.sent_body(op, body))
            key = self._key_function(op)(encoded, 0)
            hit = store.get(key, self._stats_key)
            if hit is not None:
                self.stats.cache_hits += 1
                done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
                done.set_result(completion_of(SampleResult.from_cache(hit), self.model_name, 0, prefill, op == "chat"))
                return done
            return self._fetch_one(op, body, key, encoded, prefill)
        return self._submit_rest(op, body, n, prefill)

    async def _submit_rest(
        self, op: str, body: dict[str, Any], n: int, prefill: str | None
    ) -> Completion | list[Completion]:
        """Everything the fast paths did not answer: the cache off, or several samples."""
        if not self._started:
            await self.start()
        if self.store is None and (n == 1 or self.provider.capabilities.n_samples):
            # Cache off: straight to the transport, one coroutine frame fewer on every resumption.
            started = time.perf_counter()
            response = await self._send(op, body, n, None)
            results = self._fresh_results(response, n, time.perf_counter() - started, False)
        else:
            results = await self.results(op, body, n)
        if n == 1:
            return completion_of(results[0], self.model_name, 0, prefill, op == "chat")
        return completions_of(results, self.model_name, prefill, op == "chat")

    async def _fetch_one(
        self, op: str, body: dict[str, Any], key: str, encoded: str, prefill: str | None
    ) -> Completion:
        """One sample, looked up and missed (`key`, made of `encoded`): what `results` does for it, in fewer frames.
        It is fetched and stored in the caller's own task, and shared with identical requests meanwhile."""
        if not self._started:
            await self.start()
        chat = op == "chat"
        while (shared := self.inflight.join(key)) is not None:
            try:
                fetched = await shared
            except LeaderLeft:
                continue  # its caller left: run it here, or join the caller that took it over first
            self.stats.deduplicated += 1
            return completion_of(fetched[0].shared(), self.model_name, 0, prefill, chat)
        flight = self.inflight.lead(key)
        store = self.store
        assert store is not None  # (the key was looked up in it)
        try:  # `_fetch_and_store`'s steps, in this frame: one coroutine fewer to keep and re-enter
            started = time.perf_counter()
            store.requests_in_flight += 1
            try:
                response = await self._send(op, body, 1, None)
            finally:
                store.requests_in_flight -= 1
            latency = time.perf_counter() - started
            results, committed = self._store_fresh(op, body, (0,), (key,), False, encoded, response, latency)
            del response  # (see `_store_fresh`)
            if committed is not None:
                await committed  # nobody sees a result before it is stored
        except BaseException as error:
            flight.left(error)
            raise
        flight.landed(results)
        return completion_of(results[0], self.model_name, 0, prefill, chat)

    # No comprehension in a coroutine on the hot path: its free variables would become cells, objects the garbage
    # collector tracks for as long as the request waits. They live in these plain methods instead.

    def _fresh_results(self, response: dict[str, Any], n: int, latency: float, computed: bool) -> list[SampleResult]:
        return [
            SampleResult.fresh(sample, latency)
            for sample in split_samples(response, n, computed, self.provider, self.stats)
        ]

    async def results(
        self, op: str, body: dict[str, Any], n: int, compute: Compute | None = None
    ) -> list[SampleResult]:
        """One result per sample: from the cache where stored, else from the server (and then stored).

        `compute` replaces the server call for operations the provider computes (its JSON is what gets cached)."""
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        await self.start()
        if self.store is None:
            return await self._fetch_uncached(op, body, n, compute)
        key_of = self._key_function(op)
        encoded = canonical_json(self.provider.sent_body(op, body))
        keys = [key_of(encoded, i) for i in range(n)]
        results = cached_results(self.store, keys, self._stats_key, self.stats)
        missing = [i for i in range(n) if results[i] is None]
        if len(missing) == 1:  # no gather: it would wrap the one call in a task of its own
            results[missing[0]] = (await self._fetch_or_join(op, body, missing, keys, compute, encoded))[0]
        elif missing:
            batches = sample_batches(self.provider, missing)
            fetched = await asyncio.gather(
                *(self._fetch_or_join(op, body, batch, keys, compute, encoded) for batch in batches)
            )
            for batch, batch_results in zip(batches, fetched, strict=True):
                for i, result in zip(batch, batch_results, strict=True):
                    results[i] = result
        return results  # type: ignore[return-value]

    async def _fetch_or_join(
        self,
        op: str,
        body: dict[str, Any],
        indices: list[int],
        keys: list[str],
        compute: Compute | None,
        sent_json: str,
    ) -> list[SampleResult]:
        """Fetches and stores the given samples; a caller asking for the same samples meanwhile shares the call.
        `sent_json`: the canonical JSON of the body as sent (`Provider.sent_body`), which the keys were made of."""
        # map, not a comprehension, and partial, not a lambda: either would make cells of these locals (objects the
        # garbage collector tracks while the request waits).
        batch_keys = list(map(keys.__getitem__, indices))
        call = partial(self._fetch_and_store, op, body, indices, batch_keys, compute, sent_json)
        fetched, joined = await self.inflight.run("|".join(batch_keys), call)
        if joined:
            self.stats.deduplicated += 1
            return [result.shared() for result in fetched]
        return fetched  # the list made for this caller alone

    async def _fetch_uncached(
        self, op: str, body: dict[str, Any], n: int, compute: Compute | None, first: int = 0
    ) -> list[SampleResult]:
        """n samples (from sample `first` on) with the cache off: one network call, or one per sample (see
        `sample_batches`)."""
        if len(batches := sample_batches(self.provider, list(range(first, first + n)))) > 1:
            parts = await asyncio.gather(*(self._fetch_uncached(op, body, 1, compute, batch[0]) for batch in batches))
            return [result for part in parts for result in part]
        started = time.perf_counter()
        response = await self._send(op, body, n, compute, first)
        return self._fresh_results(response, n, time.perf_counter() - started, compute is not None)

    async def _fetch_and_store(
        self,
        op: str,
        body: dict[str, Any],
        indices: Sequence[int],
        keys: Sequence[str],
        compute: Compute | None,
        sent_json: str,
    ) -> list[SampleResult]:
        """One network call for the given samples; each good sample is committed before anyone sees it."""
        store = self.store
        assert store is not None
        started = time.perf_counter()
        store.requests_in_flight += 1  # (see `ResponseStore.requests_in_flight`)
        try:
            response = await self._send(op, body, len(indices), compute, indices[0])
        finally:
            store.requests_in_flight -= 1
        latency = time.perf_counter() - started
        results, committed = self._store_fresh(
            op, body, indices, keys, compute is not None, sent_json, response, latency
        )
        if committed is not None:
            await committed  # the group commit holding these rows: nobody sees a result before it is stored
        return results

    def _store_fresh(
        self,
        op: str,
        body: dict[str, Any],
        indices: Sequence[int],
        keys: Sequence[str],
        computed: bool,
        sent_json: str,
        response: dict[str, Any],
        latency: float,
    ) -> tuple[list[SampleResult], asyncio.Future[None] | None]:
        """The results of one call's samples, and the group commit storing them (None: nothing to store)."""
        per_sample = split_samples(response, len(indices), computed, self.provider, self.stats)
        if self.store is None:
            return [SampleResult.fresh(sample, latency) for sample in per_sample], None
        # The results hold the JSON the cache stores, not the parsed response: the response's dicts and lists are
        # then freed at once, not kept (and scanned by the garbage collector) while the commit is awaited.
        results = [SampleResult.fresh(sample, latency, json_text(sample)) for sample in per_sample]
        request = sent_json if self.provider.sent_body(op, body) is body else canonical_json(body)
        records = records_to_store(self.provider, op, request, keys, indices, per_sample, results, computed)
        return results, self.store.put_soon(records)

    def _key_function(self, op: str) -> Callable[[str, int], str]:
        """The cache-key function of this model for one operation (see `cotbridge.cache.keys`)."""
        key_of = self._key_functions.get(op)
        if key_of is None:
            provider = self.provider
            key_of = self._key_functions[op] = request_key_function(
                op=op, provider=provider.name, endpoint=provider.endpoint_id, model=provider.served_model
            )
        return key_of

    def _send(
        self, op: str, body: dict[str, Any], count: int, compute: Compute | None, first: int = 0
    ) -> Awaitable[dict[str, Any]]:
        """The awaitable of one network call for `count` samples from sample `first` on (plain function: no extra
        coroutine frame). A later sample of an API without `n` goes through `chat_sample`, so a provider that must
        tell samples apart (a batch job's item ids) can."""
        if compute is not None:
            return compute()
        call = self.provider.chat if op == "chat" else self.provider.completions
        if first and op == "chat":
            call = partial(self.provider.chat_sample, sample_index=first)
        if count > 1:
            body = {**body, "n": count}
        if self.budget is not None or self.limiter is not None:
            return self._send_admitted(call, body)
        return call(body)

    async def _send_admitted(
        self, call: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], body: dict[str, Any]
    ) -> dict[str, Any]:
        """A request that waits for the model's rate limits (requests and tokens per minute) and, when priced under a
        budget, is refused before it could pass the limit and then charged what it cost (a batch model's worst case,
        and a response it sent live as its job gave no result, at the live price: `cotbridge.providers.sent_live`)."""
        if self.limiter is not None:
            await self.limiter.acquire(self.provider.estimate_tokens(body))
        budget, price = self.budget, self.price
        if budget is None or price is None:
            return await call(body)
        live_price = self.live_price or price
        reserved = budget.reserve(live_price, self.provider.estimate_tokens(body), self.provider.model_name)
        actual = 0.0
        try:
            response = await call(body)
            actual = (live_price if sent_live(response) else price).cost(parse_usage(response))
            return response
        finally:
            budget.settle(reserved, actual)
