"""The entry point: a Bridge owns the endpoints, the providers, the cache, the budget and the statistics, and
hands out Models."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from cotbridge.cache.batch_jobs import BatchJobStore
from cotbridge.cache.inflight import SingleFlight
from cotbridge.cache.keys import canonical_json
from cotbridge.cache.store import ResponseStore
from cotbridge.client.budget import Budget
from cotbridge.client.model import Model
from cotbridge.client.pipeline import RequestPipeline
from cotbridge.errors import ConfigError
from cotbridge.formats import detect_format
from cotbridge.options import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, ModelOptions, RetryPolicy, validation_message
from cotbridge.providers.base import Provider
from cotbridge.providers.batch import DEFAULT_POLL_S, batch_provider, check_batch_provider
from cotbridge.providers.capability_resolution import resolve_capabilities
from cotbridge.providers.prices import batch_price, default_price, live_price
from cotbridge.providers.ratelimit import RateLimiter
from cotbridge.providers.registry import ProviderArgs, ProviderSpec, provider_spec
from cotbridge.providers.replicas import ReplicaSet
from cotbridge.providers.sdk import SDKProvider
from cotbridge.providers.transport import Endpoint
from cotbridge.records import BridgeStats

# A model's server: one base URL, or a tuple of replicas.
Url = str | tuple[str, ...]


def _finite(name: str, value: float | None, *, above_zero: bool) -> None:
    """Refuses nan and inf (a timeout that never ends, a budget or price no sum passes) and values below 0 (or at 0,
    with `above_zero`)."""
    if value is not None and (not math.isfinite(value) or (value <= 0 if above_zero else value < 0)):
        bound = "above 0" if above_zero else "of at least 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


class Bridge:
    """Entry point: `async with Bridge(cache="study.db") as bridge: m = bridge.model("vllm/...")`.

    cache: path of the SQLite cache file, ":memory:", or None to send every request.
    max_concurrency: default bound on in-flight requests per endpoint (also its connection limit).
    budget_usd: a spending limit over every model given a price (`Bridge.model(..., price=Price(...))`).
    timeout_s: default per-request timeout; retry: how transient failures are retried.
    """

    def __init__(
        self,
        cache: str | Path | None = None,
        *,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        budget_usd: float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        _finite("timeout_s", timeout_s, above_zero=True)
        _finite("budget_usd", budget_usd, above_zero=True)
        self.stats = BridgeStats()
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.budget = Budget(budget_usd) if budget_usd is not None else None
        self._store = ResponseStore(cache) if cache is not None else None
        self._batch_jobs: BatchJobStore | None = None  # opened with the first batch model
        self._inflight: SingleFlight[Any] = SingleFlight()
        self._endpoints: dict[tuple[str, str | None], Endpoint] = {}
        self._replica_sets: dict[tuple[tuple[str, ...], str | None], ReplicaSet] = {}
        # A provider per model string, server, key and capability override (one embedded server per local model);
        # a Model per provider and options, so models that differ in any option are distinct and equal options give
        # the same Model.
        self._providers: dict[tuple[str, Url, str | None, str], Provider] = {}
        self._models: dict[tuple[str, Url, str | None, str], Model] = {}
        self._pipelines: list[RequestPipeline] = []  # closed with the bridge
        self._closed = False

    @property
    def cache_path(self) -> str | None:
        return self._store.path if self._store is not None else None

    async def __aenter__(self) -> Bridge:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Stops local servers, closes connections and writes pending cache statistics. Afterwards the bridge and its
        models refuse every request (ConfigError) rather than run without the cache; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        for pipeline in self._pipelines:
            pipeline.close()
        try:
            for provider in self._providers.values():
                await provider.aclose()
            for endpoint in self._endpoints.values():
                await endpoint.aclose()
        finally:
            self._models.clear()
            self._providers.clear()
            self._endpoints.clear()
            self._replica_sets.clear()
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._batch_jobs is not None:
                self._batch_jobs.close()
                self._batch_jobs = None

    def model(
        self, model: str, *, api_key: str | None = None, options: ModelOptions | None = None, **fields: Any
    ) -> Model:
        """A model by its `provider/model-id` string.

        Providers: `vllm/...`, `llamacpp/...`, `openai-compatible/...` (with base_url), `local/smollm2-135m`,
        and hosted APIs (keys from their variables, e.g. OPENAI_API_KEY): `openai/...` (Responses API),
        `anthropic/...` and `gemini/...` (extra `hosted`), `deepseek/...`, `openrouter/...`, `together/...`,
        `fireworks/...`.
        Options are `ModelOptions` fields, given as `options=` or as keywords (keywords win): base_url (default
        $COTBRIDGE_<PROVIDER>_BASE_URL, then the server's usual address; a list of replicas of one model, see
        `cotbridge.providers.replicas`), api_key_env, thinking_format, injection, max_concurrency, timeout_s, rpm / tpm
        (limits of the model's endpoint), price (USD per million tokens; hosted models default to the price map bundled
        with litellm), extra_body (fields added to every request, part of the cache key) and capabilities (fields laid
        over what the bundled data says the model can do, e.g. {"visibility": "raw"}; see
        `cotbridge.providers.capability_resolution`), batch (openai/ and anthropic/ models: requests go as jobs to the
        vendor's batch API, at the batch price, into the same cache rows; a request a job gives no result is sent
        live and charged at the live price, see `cotbridge.providers.batch` and `prices.live_price`) and
        batch_poll_s (the first wait between polls of a job). The key comes from api_key, else the variable named by
        api_key_env, else $COTBRIDGE_<PROVIDER>_API_KEY, else the hosted provider's own variable.
        """
        if self._closed:
            raise ConfigError(
                f"{model}: this Bridge is closed (aclose() ran or its `async with` ended); open a new one"
            )
        spec, model_id = provider_spec(model)
        opts = self._options(model, options, fields)
        if opts.batch:
            check_batch_provider(model, spec.name)
        url = self._base_url(spec, model, opts)
        api_key = self._api_key(spec, model, api_key, opts)
        identity = (model, url, api_key, canonical_json(opts.model_dump(mode="json")))
        existing = self._models.get(identity)
        if existing is not None:
            return existing
        provider = self._provider(spec, model, model_id, url, api_key, opts)
        bundled = (batch_price if opts.batch else default_price)(spec, model_id) if opts.price is None else None
        if bundled is not None:
            opts = opts.model_copy(update={"price": bundled})
        # A batch model's request its job gives no result goes live and is billed at the live price.
        live = live_price(spec, model_id, opts.price) if opts.batch and opts.price is not None else None
        pipeline = RequestPipeline(
            provider,
            store=self._store,
            inflight=self._inflight,
            stats=self.stats,
            budget=self.budget,
            price=opts.price,
            live_price=live,
            limiter=RateLimiter(opts.rpm, opts.tpm) if opts.rpm or opts.tpm else None,
        )
        self._pipelines.append(pipeline)
        thinking_format = detect_format(model_id, opts.thinking_format, spec.default_format)
        created = Model(provider, pipeline, opts, thinking_format)
        self._models[identity] = created
        return created

    def models(self, names: Sequence[str], **fields: Any) -> list[Model]:
        """Several models with the same options."""
        return [self.model(name, **fields) for name in names]

    @staticmethod
    def _options(model: str, options: ModelOptions | None, fields: dict[str, Any]) -> ModelOptions:
        given = options.model_dump(exclude_unset=True) if options is not None else {}
        try:
            return ModelOptions.model_validate({**given, **fields})
        except ValidationError as exc:
            raise ConfigError(validation_message(exc, f"options of {model}")) from None

    @staticmethod
    def _base_url(spec: ProviderSpec, model: str, options: ModelOptions) -> Url:
        """The server's URL: the option, else the provider's variable, else its usual address ("" for local); a
        tuple for a list of replicas (even of one: a list means the replicas' identity in cache keys)."""
        if not spec.needs_url:
            return ""
        given = options.base_url or os.environ.get(spec.env_var("BASE_URL")) or spec.base_url
        if not given:
            raise ConfigError(f"{model}: no base_url; pass base_url=... or set {spec.env_var('BASE_URL')}")
        urls = [given] if isinstance(given, str) else given
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{model}: base_url {url!r} must start with http:// or https://")
        if len(urls) > 1 and spec.hosted:
            raise ConfigError(f"{model}: a list of base_url (replicas) is for servers you run, not {spec.name}")
        if isinstance(given, str):
            return given.rstrip("/")
        return tuple(url.rstrip("/") for url in given)

    @staticmethod
    def _api_key(spec: ProviderSpec, model: str, api_key: str | None, options: ModelOptions) -> str | None:
        if api_key is not None:
            return api_key
        if options.api_key_env is not None:
            api_key = os.environ.get(options.api_key_env)
            if api_key is None:
                raise ConfigError(f"{model}: environment variable {options.api_key_env} (api_key_env) is not set")
            return api_key
        api_key = os.environ.get(spec.env_var("API_KEY"))
        if api_key is None and spec.key_env is not None:
            api_key = os.environ.get(spec.key_env)
            if not api_key:
                raise ConfigError(
                    f"{model}: no API key; set the environment variable {spec.key_env} "
                    "(or name another one with api_key_env)"
                )
        return api_key

    def _provider(
        self, spec: ProviderSpec, model: str, model_id: str, url: Url, api_key: str | None, options: ModelOptions
    ) -> Provider:
        batch = canonical_json([options.batch, options.batch_poll_s]) if options.batch else ""
        key = (model, url, api_key, canonical_json(options.capabilities) + batch)
        provider = self._providers.get(key)
        if provider is None:
            capabilities = resolve_capabilities(spec, model_id, options.capabilities, model=model)

            def endpoint_for(base_url: str) -> Endpoint:
                if isinstance(url, tuple):
                    return self._replica_set(url, api_key, options, model)
                return self._endpoint(base_url, api_key, options, model, watch_headers=spec.hosted)

            # Providers see the first replica's URL; every endpoint they ask for is the replica set.
            first = url if isinstance(url, str) else url[0]
            provider = spec.make(spec, ProviderArgs(model, model_id, first, api_key, endpoint_for, capabilities))
            if options.batch:
                assert isinstance(provider, SDKProvider) and api_key is not None  # openai/ and anthropic/ are
                poll_s = options.batch_poll_s or DEFAULT_POLL_S
                provider = batch_provider(provider, api_key, self._batch_ledger(), self.stats, poll_s)
            self._providers[key] = provider
        elif url:
            for each in [url] if isinstance(url, str) else url:
                self._endpoint(each, api_key, options, model, watch_headers=spec.hosted)  # checks settings agree
        return provider

    def _batch_ledger(self) -> BatchJobStore:
        """The batch jobs of this bridge's cache file (where a killed run finds them again); in memory without one."""
        if self._batch_jobs is None:
            self._batch_jobs = BatchJobStore(self._store.path if self._store is not None else ":memory:")
        return self._batch_jobs

    def _replica_set(self, urls: tuple[str, ...], api_key: str | None, options: ModelOptions, model: str) -> ReplicaSet:
        """The replica set of these URLs, shared like an endpoint; each replica's endpoint is the one any
        model using that server alone gets, so its bound on in-flight requests holds for both."""
        key = (urls, api_key)
        replicas = self._replica_sets.get(key)
        if replicas is None:
            members = [self._endpoint(url, api_key, options, model, watch_headers=False) for url in urls]
            replicas = self._replica_sets[key] = ReplicaSet(members)
        return replicas

    def _endpoint(
        self, base_url: str, api_key: str | None, options: ModelOptions, model: str, *, watch_headers: bool
    ) -> Endpoint:
        """The endpoint of a server, shared by every model on it. A model that asks for another bound or timeout than
        the endpoint already has is refused, not silently given the first model's."""
        key = (base_url.rstrip("/"), api_key)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = Endpoint(
                base_url,
                api_key=api_key,
                max_concurrency=options.max_concurrency or self.max_concurrency,
                timeout_s=options.timeout_s or self.timeout_s,
                retry=self.retry,
                stats=self.stats,
                watch_rate_limit_headers=watch_headers,
            )
            self._endpoints[key] = endpoint
            return endpoint
        conflicts = [
            f"{name} {wanted} (it has {has})"
            for name, wanted, has in (
                ("max_concurrency", options.max_concurrency, endpoint.max_concurrency),
                ("timeout_s", options.timeout_s, endpoint.timeout_s),
            )
            if wanted is not None and wanted != has
        ]
        if conflicts:
            raise ConfigError(
                f"{model}: its server {endpoint.public_url} is already in use by another model with other settings; "
                f"asked for {', '.join(conflicts)}. Give every model on one server the same values, or leave them out"
            )
        return endpoint
