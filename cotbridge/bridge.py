"""The public async API: a Bridge owns endpoints, the cache and statistics; a Model sends requests through it.

Every request goes: cache lookup -> in-flight de-duplication -> the provider's transport (bounded, retried) ->
the response committed to the cache before the caller sees it, so a killed run loses nothing that came back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload

from cotbridge.cache import ResponseStore, SingleFlight
from cotbridge.cache.keys import canonical_json, request_key_function
from cotbridge.cache.store import CachedResponse, ResponseRecord
from cotbridge.errors import ConfigError, MalformedResponseError
from cotbridge.providers import (
    Capabilities,
    Endpoint,
    LlamaCppProvider,
    LocalProvider,
    OpenAICompatProvider,
    RetryPolicy,
    VLLMProvider,
)
from cotbridge.providers.response import (
    first_choice_fields,
    is_cacheable_choice,
    parse_logprobs,
    parse_usage,
    split_reasoning,
)
from cotbridge.types import BridgeStats, Completion, ContinuationScore, Message, TokenLogprob, Usage

REMOTE_PROVIDERS: dict[str, type[OpenAICompatProvider]] = {
    "vllm": VLLMProvider,
    "llamacpp": LlamaCppProvider,
    "openai-compatible": OpenAICompatProvider,
}
# Each server's own default address; openai-compatible has none and needs base_url.
DEFAULT_BASE_URLS = {"vllm": "http://127.0.0.1:8000/v1", "llamacpp": "http://127.0.0.1:8080/v1"}
ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


def env_var(provider: str, what: str) -> str:
    """The environment variable that supplies a provider's base URL or key, e.g. COTBRIDGE_VLLM_BASE_URL."""
    return f"COTBRIDGE_{provider.upper().replace('-', '_')}_{what}"


def validate_messages(messages: Any) -> list[Message]:
    """Checks chat messages where they enter, so a mistake is named here and not by a server far away."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ConfigError(f"messages[{i}] must be a dict with 'role' and 'content', got {type(message).__name__}")
        if message.get("role") not in ROLES:
            raise ConfigError(f"messages[{i}]['role'] is {message.get('role')!r}; use one of {sorted(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ConfigError(f"messages[{i}]['content'] must be a string")
    return messages


@dataclass(slots=True)
class _Result:
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
    def fresh(cls, response: dict[str, Any], latency_s: float) -> _Result:
        fields = first_choice_fields(response)
        return cls(raw=response, latency_s=latency_s, cached=False, usage=parse_usage(response), **fields)

    @classmethod
    def from_cache(cls, hit: CachedResponse) -> _Result:
        response, latency_s, content, reasoning, finish_reason, logprobs, prompt, completion, thinking = hit
        usage = Usage(prompt, completion, thinking)
        return cls(response, latency_s, True, content, reasoning, finish_reason, logprobs, usage)

    def shared(self) -> _Result:
        """The same result as seen by a caller that joined another caller's request (marked cached)."""
        return _Result(
            self.raw,
            self.latency_s,
            True,
            self.content,
            self.reasoning,
            self.finish_reason,
            self.logprobs,
            self.usage,
        )


class Model:
    """One model on one endpoint. Get it from `Bridge.model(...)`."""

    def __init__(self, bridge: Bridge, provider: Any) -> None:
        self._bridge = bridge
        self.provider = provider
        self.name: str = provider.model_name
        self._started = False
        self._key_functions: dict[str, Any] = {}
        # Cache hits are counted per (provider, model) for `cotbridge cache stats`.
        self._stats_key = (provider.name, provider.served_model)

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    @property
    def capabilities(self) -> Capabilities:
        caps: Capabilities = self.provider.capabilities
        return caps

    async def _start(self) -> None:
        if not self._started:
            await self.provider.start()
            self._started = True

    # -- chat -------------------------------------------------------------------------------------------------

    @overload
    async def chat(  # type: ignore[overload-overlap]
        self,
        messages: list[Message],
        *,
        n: Literal[1] = 1,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion: ...

    @overload
    async def chat(  # type: ignore[overload-overlap]
        self,
        messages: list[Message],
        *,
        n: int,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> list[Completion]: ...

    async def chat(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        n: int = 1,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion | list[Completion]:
        """A chat completion; with n > 1, a list of n samples, each cached as its own row.

        A final assistant message is a prefill: the model continues it (vLLM gets `continue_final_message`).
        `logprobs=k` asks for each generated token's log-prob and its k best alternatives.
        """
        validate_messages(messages)
        body: dict[str, Any] = {
            "model": self.provider.served_model,
            "messages": messages,
            "temperature": float(temperature),
        }
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        if seed is not None:
            body["seed"] = int(seed)
        if top_p is not None:
            body["top_p"] = float(top_p)
        if stop is not None:
            body["stop"] = stop
        if logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = int(logprobs)
        prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else None
        if prefill is not None and isinstance(self.provider, VLLMProvider):
            body["add_generation_prompt"] = False
            body["continue_final_message"] = True
        if extra_body:
            body.update(extra_body)
        results = await self._run("chat", body, n)
        completions = [self._completion(result, i, prefill, chat=True) for i, result in enumerate(results)]
        return completions[0] if n == 1 else completions

    def _completion(self, result: _Result, index: int, prefill: str | None, *, chat: bool) -> Completion:
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
            model=self.name,
            cached=result.cached,
            latency_s=result.latency_s,
            sample_index=index,
            logprobs=parse_logprobs(logprobs) if logprobs else None,
            _raw=result.raw,
        )

    # -- text completion --------------------------------------------------------------------------------------

    @overload
    async def complete(  # type: ignore[overload-overlap]
        self,
        prompt: str | list[int],
        *,
        n: Literal[1] = 1,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion: ...

    @overload
    async def complete(
        self,
        prompt: str | list[int],
        *,
        n: int,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> list[Completion]: ...

    async def complete(
        self,
        prompt: str | list[int],
        *,
        max_tokens: int = 16,
        temperature: float = 0.0,
        seed: int | None = None,
        n: int = 1,
        stop: str | list[str] | None = None,
        logprobs: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion | list[Completion]:
        """A text completion of a prompt string or a list of token ids (vLLM, llama.cpp)."""
        if isinstance(prompt, list):
            if not all(isinstance(t, int) for t in prompt):
                raise ConfigError("a token-id prompt must be a list of ints")
            if not self.capabilities.token_id_prompts:
                raise ConfigError(
                    f"{self.name}: this provider does not take token-id prompts; pass text, or use vllm/ or llamacpp/"
                )
        elif not isinstance(prompt, str):
            raise ConfigError("prompt must be a string or a list of token ids")
        body: dict[str, Any] = {
            "model": self.provider.served_model,
            "prompt": prompt,
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
        }
        if seed is not None:
            body["seed"] = int(seed)
        if stop is not None:
            body["stop"] = stop
        if logprobs is not None:
            body["logprobs"] = int(logprobs)
        if extra_body:
            body.update(extra_body)
        results = await self._run("completions", body, n)
        completions = [self._completion(result, i, None, chat=False) for i, result in enumerate(results)]
        return completions[0] if n == 1 else completions

    # -- scoring ----------------------------------------------------------------------------------------------

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        """Log-probs of the continuation's own tokens after the prompt (chat messages are rendered with the
        model's chat template and its generation prompt). Raises UnsupportedOperation when the server cannot.
        """
        if not isinstance(continuation, str) or not continuation:
            raise ConfigError("continuation must be a non-empty string")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            validate_messages(prompt)
        if self.capabilities.prompt_scoring is None:
            raise self.provider._cannot_score("it offers no prompt log-probs")
        body = {"prompt": prompt, "continuation": continuation}

        async def compute() -> dict[str, Any]:
            result: ContinuationScore = await self.provider.score(prompt, continuation)
            return {
                "method": result.method,
                "tokens": [[t.token, t.logprob, t.token_id] for t in result.tokens],
            }

        result = (await self._run("score", body, 1, compute=compute))[0]
        payload = json.loads(result.raw) if isinstance(result.raw, str) else result.raw
        cached = result.cached
        return ContinuationScore(
            tokens=tuple(TokenLogprob(token=t, logprob=lp, token_id=tid) for t, lp, tid in payload["tokens"]),
            method=payload["method"],
            model=self.name,
            cached=cached,
        )

    # -- the cache path ---------------------------------------------------------------------------------------

    async def _run(self, op: str, body: dict[str, Any], n: int, compute: Any = None) -> list[_Result]:
        """One result per sample: from the cache where stored, else from the server (and then stored)."""
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        if not self._started:
            await self._start()
        bridge = self._bridge
        store = bridge._store
        if store is None:
            started = time.perf_counter()
            response = await self._send(op, body, n, compute)
            latency = time.perf_counter() - started
            return [_Result.fresh(r, latency) for r in self._per_sample(response, n, compute is not None)]
        key_of = self._key_prefix(op)
        encoded = canonical_json(body)
        keys = [key_of(encoded, i) for i in range(n)]
        results: list[_Result | None] = [None] * n
        for i, key in enumerate(keys):
            hit = store.get(key, self._stats_key)
            if hit is not None:
                results[i] = _Result.from_cache(hit)
                bridge.stats.cache_hits += 1
        if n == 1 and results[0] is not None:  # the warm-cache hot path returns here
            return results  # type: ignore[return-value]
        missing = [i for i in range(n) if results[i] is None]
        if missing:
            missing_keys = [keys[i] for i in missing]
            fetched, joined = await bridge._inflight.run(
                "|".join(missing_keys), lambda: self._fetch_and_store(op, body, missing, missing_keys, compute)
            )
            if joined:
                bridge.stats.deduplicated += 1
            for i, result in zip(missing, fetched, strict=True):
                results[i] = result.shared() if joined else result
        return results  # type: ignore[return-value]

    def _key_prefix(self, op: str) -> Any:
        """The cache-key function of this model for one operation (see `cotbridge.cache.keys`)."""
        key_of = self._key_functions.get(op)
        if key_of is None:
            provider = self.provider
            key_of = request_key_function(
                op=op, provider=provider.name, endpoint=provider.endpoint_id, model=provider.served_model
            )
            self._key_functions[op] = key_of
        return key_of

    def _send(self, op: str, body: dict[str, Any], count: int, compute: Any) -> Any:
        """The awaitable of one network call for `count` samples (plain function: no extra coroutine frame)."""
        if compute is not None:
            return compute()
        send = body if count == 1 else {**body, "n": count}
        return self.provider.chat(send) if op == "chat" else self.provider.completions(send)

    def _per_sample(self, response: dict[str, Any], count: int, computed: bool) -> list[dict[str, Any]]:
        """Splits a response into one response per sample (each with its own single choice); counts tokens."""
        if computed:
            return [response]
        choices = response.get("choices")
        if not isinstance(choices, list) or len(choices) < count:
            got = len(choices) if isinstance(choices, list) else 0
            raise MalformedResponseError(
                f"asked for {count} choice(s), the response has {got}",
                model=self.name,
                endpoint=str(self.provider.endpoint_id),
            )
        usage = response.get("usage")
        stats = self._bridge.stats
        if usage:
            stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        if count == 1:
            return [response]
        head = {k: v for k, v in response.items() if k != "choices"}
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        return [{**head, "choices": [{**choice, "index": 0}]} for choice in choices[:count]]

    async def _fetch_and_store(
        self, op: str, body: dict[str, Any], indices: list[int], keys: list[str], compute: Any
    ) -> list[_Result]:
        """One network call for the given samples; each good sample is committed before anyone sees it."""
        started = time.perf_counter()
        response = await self._send(op, body, len(indices), compute)
        latency = time.perf_counter() - started
        per_sample = self._per_sample(response, len(indices), compute is not None)
        results = [_Result.fresh(resp, latency) for resp in per_sample]
        store = self._bridge._store
        if store is not None:
            provider = self.provider
            store.put_many(
                ResponseRecord(
                    key=key,
                    op=op,
                    provider=provider.name,
                    endpoint=provider.endpoint_id,
                    model=provider.served_model,
                    sample_index=index,
                    request=body,
                    response=resp,
                    latency_s=latency,
                    prompt_tokens=result.usage.prompt_tokens,
                    completion_tokens=result.usage.completion_tokens,
                    reasoning_tokens=result.usage.reasoning_tokens,
                    content=result.content,
                    reasoning=result.reasoning,
                    finish_reason=result.finish_reason,
                    logprobs=result.logprobs,
                )
                for key, index, resp, result in zip(keys, indices, per_sample, results, strict=True)
                if compute is not None or is_cacheable_choice(resp["choices"][0])
            )
        return results


class Bridge:
    """Entry point: `async with Bridge(cache="study.db") as bridge: m = bridge.model("vllm/...")`.

    cache: path of the SQLite cache file, ":memory:", or None to send every request.
    max_concurrency: default bound on in-flight requests per endpoint (also its connection limit).
    timeout_s: per-request timeout; retry: how transient failures are retried.
    """

    def __init__(
        self,
        cache: str | Path | None = None,
        *,
        max_concurrency: int = 16,
        timeout_s: float = 600.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.stats = BridgeStats()
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
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
        self, base_url: str, api_key: str | None, max_concurrency: int | None, timeout_s: float | None
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
            )
            self._endpoints[key] = endpoint
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
    ) -> Model:
        """A model by its `provider/model-id` string.

        Providers: `vllm/...`, `llamacpp/...`, `openai-compatible/...` (with base_url), `local/smollm2-135m`.
        base_url defaults to $COTBRIDGE_<PROVIDER>_BASE_URL, then the server's usual address; the key comes
        from api_key, else the variable named by api_key_env, else $COTBRIDGE_<PROVIDER>_API_KEY.
        """
        provider_name, sep, model_id = model.partition("/")
        if not sep or not model_id:
            raise ConfigError(
                f"model {model!r} needs the form provider/model-id, e.g. vllm/Qwen/QwQ-32B or local/smollm2-135m"
            )
        if provider_name == "local":
            cache_key: tuple[Any, ...] = (model,)
            if cache_key not in self._models:
                provider = LocalProvider(
                    model, model_id, lambda url: self._endpoint(url, None, max_concurrency, timeout_s)
                )
                self._models[cache_key] = Model(self, provider)
            return self._models[cache_key]
        provider_cls = REMOTE_PROVIDERS.get(provider_name)
        if provider_cls is None:
            known = ", ".join([*REMOTE_PROVIDERS, "local"])
            raise ConfigError(f"unknown provider {provider_name!r} in {model!r}; known providers: {known}")
        url = base_url or os.environ.get(env_var(provider_name, "BASE_URL")) or DEFAULT_BASE_URLS.get(provider_name)
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
        cache_key = (model, url.rstrip("/"), api_key)
        existing = self._models.get(cache_key)
        if existing is not None:
            return existing
        endpoint = self._endpoint(url, api_key, max_concurrency, timeout_s)
        created = Model(self, provider_cls(model, model_id, endpoint))
        self._models[cache_key] = created
        return created

    def models(self, names: Sequence[str], **options: Any) -> list[Model]:
        """Several models with the same options."""
        return [self.model(name, **options) for name in names]
