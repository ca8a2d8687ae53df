"""The entry point: a Bridge owns the endpoints, the cache and the statistics, and hands out Models."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from cotbridge.cache import ResponseStore, SingleFlight
from cotbridge.costs import Budget, Price, default_price
from cotbridge.datasets.base import Problem
from cotbridge.ensemble import EnsembleTrace, build_ensemble
from cotbridge.errors import ConfigError
from cotbridge.model import Model
from cotbridge.providers import (
    Endpoint,
    LlamaCppProvider,
    LocalProvider,
    OpenAICompatProvider,
    RetryPolicy,
    VLLMProvider,
)
from cotbridge.providers.hosted import HOSTED, hosted_provider
from cotbridge.providers.ratelimit import RateLimiter
from cotbridge.reasoning import Explanation, InjectionMode
from cotbridge.types import BridgeStats

REMOTE_PROVIDERS: dict[str, type[OpenAICompatProvider]] = {
    "vllm": VLLMProvider,
    "llamacpp": LlamaCppProvider,
    "openai-compatible": OpenAICompatProvider,
}
# Each server's own default address; openai-compatible has none and needs base_url.
DEFAULT_BASE_URLS = {"vllm": "http://127.0.0.1:8000/v1", "llamacpp": "http://127.0.0.1:8080/v1"}


def env_var(provider: str, what: str) -> str:
    """The environment variable that supplies a provider's base URL or key, e.g. COTBRIDGE_VLLM_BASE_URL."""
    return f"COTBRIDGE_{provider.upper().replace('-', '_')}_{what}"


class Bridge:
    """Entry point: `async with Bridge(cache="study.db") as bridge: m = bridge.model("vllm/...")`.

    cache: path of the SQLite cache file, ":memory:", or None to send every request.
    max_concurrency: default bound on in-flight requests per endpoint (also its connection limit).
    budget_usd: a spending limit over every model given a price (`Bridge.model(..., price=Price(...))`).
    timeout_s: per-request timeout; retry: how transient failures are retried.
    """

    def __init__(
        self,
        cache: str | Path | None = None,
        *,
        max_concurrency: int = 16,
        timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
        budget_usd: float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.stats = BridgeStats()
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.budget = Budget(budget_usd) if budget_usd is not None else None
        self._store = ResponseStore(cache) if cache is not None else None
        self._inflight: SingleFlight[Any] = SingleFlight()
        self._endpoints: dict[tuple[str, str | None], Endpoint] = {}
        self._models: dict[tuple[Any, ...], Model] = {}

    @property
    def cache_path(self) -> str | None:
        return self._store.path if self._store is not None else None

    async def __aenter__(self) -> Bridge:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops local servers, closes connections and writes pending cache statistics."""
        for model in self._models.values():
            await model.provider.aclose()
        for endpoint in self._endpoints.values():
            await endpoint.aclose()
        self._models.clear()
        self._endpoints.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def _endpoint(
        self,
        base_url: str,
        api_key: str | None,
        max_concurrency: int | None,
        timeout_s: float | None,
        rpm: int | None = None,
        tpm: int | None = None,
        hosted: bool = False,
    ) -> Endpoint:
        key = (base_url.rstrip("/"), api_key)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = Endpoint(
                base_url,
                api_key=api_key,
                max_concurrency=max_concurrency or self.max_concurrency,
                timeout_s=timeout_s or self.timeout_s,
                retry=self.retry,
                stats=self.stats,
                limiter=RateLimiter(rpm, tpm) if rpm or tpm else None,
                watch_rate_limit_headers=hosted,
            )
            self._endpoints[key] = endpoint
        elif (rpm or tpm) and endpoint.limiter is None:
            endpoint.limiter = RateLimiter(rpm, tpm)
        return endpoint

    def model(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int | None = None,
        timeout_s: float | None = None,
        thinking_format: str | None = None,
        injection: InjectionMode | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        price: Price | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Model:
        """A model by its `provider/model-id` string.

        Providers: `vllm/...`, `llamacpp/...`, `openai-compatible/...` (with base_url), `local/smollm2-135m`,
        and hosted APIs (keys from their variables, e.g. OPENAI_API_KEY): `openai/...` (Responses API),
        `anthropic/...` and `gemini/...` (extra `hosted`), `deepseek/...`, `openrouter/...`, `together/...`,
        `fireworks/...`.
        base_url defaults to $COTBRIDGE_<PROVIDER>_BASE_URL, then the server's usual address; the key comes
        from api_key, else the variable named by api_key_env, else $COTBRIDGE_<PROVIDER>_API_KEY.
        thinking_format overrides the family guessed from the model id (think-tags, openthinker, harmony,
        reasoning-field, none); injection sets the default CoT injection mode (prefill or context).
        rpm / tpm: requests and tokens per minute allowed on this model's endpoint (the first limits given for an
        endpoint apply to every model on it). price: USD per million tokens, for costs and the bridge's budget (hosted
        models default to the price map bundled with litellm, when it is installed).
        extra_body: fields added to every chat and completion request of this model (part of the cache key).
        """
        provider_name, sep, model_id = model.partition("/")
        if not sep or not model_id:
            raise ConfigError(
                f"model {model!r} needs the form provider/model-id, e.g. vllm/Qwen/QwQ-32B or local/smollm2-135m"
            )
        if provider_name == "local":
            cache_key: tuple[Any, ...] = (model, thinking_format, injection, repr(extra_body))
            if cache_key not in self._models:
                provider = LocalProvider(
                    model, model_id, lambda url: self._endpoint(url, None, max_concurrency, timeout_s)
                )
                self._models[cache_key] = Model(
                    self,
                    provider,
                    thinking_format=thinking_format,
                    injection=injection,
                    price=price,
                    extra_body=extra_body,
                )
            return self._models[cache_key]
        hosted = HOSTED.get(provider_name)
        provider_cls = REMOTE_PROVIDERS.get(provider_name)
        if provider_cls is None and hosted is None:
            known = ", ".join([*REMOTE_PROVIDERS, *HOSTED, "local"])
            raise ConfigError(f"unknown provider {provider_name!r} in {model!r}; known providers: {known}")
        default_url = hosted.base_url if hosted else DEFAULT_BASE_URLS.get(provider_name)
        url = base_url or os.environ.get(env_var(provider_name, "BASE_URL")) or default_url
        if not url:
            raise ConfigError(f"{model}: no base_url; pass base_url=... or set {env_var(provider_name, 'BASE_URL')}")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{model}: base_url {url!r} must start with http:// or https://")
        if api_key is None and api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if api_key is None:
                raise ConfigError(f"{model}: environment variable {api_key_env} (api_key_env) is not set")
        if api_key is None:
            api_key = os.environ.get(env_var(provider_name, "API_KEY"))
        if api_key is None and hosted is not None:
            api_key = os.environ.get(hosted.key_env)
            if not api_key:
                raise ConfigError(
                    f"{model}: no API key; set the environment variable {hosted.key_env} "
                    "(or name another one with api_key_env)"
                )
        cache_key = (model, url.rstrip("/"), api_key, thinking_format, injection, repr(extra_body))
        existing = self._models.get(cache_key)
        if existing is not None:
            return existing
        endpoint = self._endpoint(url, api_key, max_concurrency, timeout_s, rpm, tpm, hosted=hosted is not None)
        if hosted is not None:
            assert api_key is not None
            remote: Any = hosted_provider(hosted, model, model_id, endpoint, api_key)
            price = price or default_price(model)
        else:
            assert provider_cls is not None
            remote = provider_cls(model, model_id, endpoint)
        created = Model(
            self,
            remote,
            thinking_format=thinking_format,
            injection=injection,
            price=price,
            extra_body=extra_body,
        )
        self._models[cache_key] = created
        return created

    async def ensemble(
        self,
        problem: Problem,
        *,
        generators: Sequence[Model | str],
        evaluators: Sequence[Model | str],
        candidates: int = 3,
        **options: Any,
    ) -> tuple[Explanation, EnsembleTrace]:
        """A sentence-level ensemble CoT (condition D) for one problem, and its trace; see `cotbridge.ensemble`.

        Models may be given as Model objects or model strings; options are those of `build_ensemble`
        (max_steps, max_cot_tokens, max_sentence_tokens, temperature, seed, stop_on_any_close, name).
        """
        gens = [m if isinstance(m, Model) else self.model(m) for m in generators]
        evals = [m if isinstance(m, Model) else self.model(m) for m in evaluators]
        return await build_ensemble(problem, gens, evals, candidates=candidates, **options)

    def models(self, names: Sequence[str], **options: Any) -> list[Model]:
        """Several models with the same options."""
        return [self.model(name, **options) for name in names]
