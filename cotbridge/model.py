"""A model on one endpoint: chat, text completion and scoring through the cache, plus the CoT operations.

Every request goes: cache lookup -> in-flight de-duplication -> the provider's transport (bounded, retried) ->
the response committed to the cache before the caller sees it, so a killed run loses nothing that came back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from cotbridge import transfer
from cotbridge.cache.keys import canonical_json, request_key_function
from cotbridge.cache.store import CachedResponse, ResponseRecord
from cotbridge.costs import Price
from cotbridge.datasets.base import Problem
from cotbridge.errors import ConfigError, MalformedResponseError, UnsupportedOperation
from cotbridge.providers import Capabilities, VLLMProvider
from cotbridge.providers.ratelimit import estimate_tokens
from cotbridge.providers.response import (
    first_choice_fields,
    is_cacheable_choice,
    parse_logprobs,
    parse_usage,
    split_reasoning,
)
from cotbridge.reasoning import Answer, Explanation, InjectionMode, ThinkingFormat, detect_format
from cotbridge.types import Completion, ContinuationScore, Message, TokenLogprob, Usage

if TYPE_CHECKING:
    from cotbridge.bridge import Bridge

ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


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
        f = first_choice_fields(response)
        usage = parse_usage(response)
        return cls(response, latency_s, False, f["content"], f["reasoning"], f["finish_reason"], f["logprobs"], usage)

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


def _split_usage(usage: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """One response's usage shared out over its `count` samples, so that the samples' usages add up to it (servers
    report one total for all choices)."""
    shares: list[dict[str, Any]] = [{} for _ in range(count)]
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(name)
        if isinstance(value, int):
            for i in range(count):
                shares[i][name] = value // count + (1 if i < value % count else 0)
    return shares


class Model:
    """One model on one endpoint. Get it from `Bridge.model(...)`."""

    def __init__(
        self,
        bridge: Bridge,
        provider: Any,
        *,
        thinking_format: str | None = None,
        injection: InjectionMode | None = None,
        price: Price | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self._bridge = bridge
        self.price = price
        self.extra_body = dict(extra_body or {})
        self.provider = provider
        self.name: str = provider.model_name
        self.thinking_format: ThinkingFormat = detect_format(self.name, thinking_format)
        if injection not in (None, "prefill", "context"):
            raise ConfigError(f"{self.name}: injection must be 'prefill' or 'context', got {injection!r}")
        self.injection: InjectionMode | None = injection
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
    def chat(  # type: ignore[overload-overlap]
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
    ) -> Awaitable[Completion]: ...

    @overload
    def chat(  # type: ignore[overload-overlap]
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
    ) -> Awaitable[list[Completion]]: ...

    def chat(
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
    ) -> Awaitable[Completion | list[Completion]]:
        """A chat completion (await it); with n > 1, a list of n samples, each cached as its own row.

        A final assistant message is a prefill: the model continues it (vLLM gets `continue_final_message`).
        `logprobs=k` asks for each generated token's log-prob and its k best alternatives. Bad input raises here,
        at the call.
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
        if self.extra_body:
            body.update(self.extra_body)
        if extra_body:
            body.update(extra_body)
        return self._answer_from_cache_or_run("chat", body, n, prefill)

    def _answer_from_cache_or_run(self, op: str, body: dict[str, Any], n: int, prefill: str | None) -> Awaitable[Any]:
        """A stored single sample comes back as an already finished future: no coroutine, no task, nothing for
        the event loop to schedule (the warm-cache hot path). Everything else runs in `_finish`."""
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        store = self._bridge._store
        encoded = None
        if store is not None and n == 1:  # a hit needs no server: not even a local one started
            encoded = canonical_json(body)
            hit = store.get(self._key_prefix(op)(encoded, 0), self._stats_key)
            if hit is not None:
                self._bridge.stats.cache_hits += 1
                done: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
                done.set_result(self._completion(_Result.from_cache(hit), 0, prefill, chat=op == "chat"))
                return done
        return self._finish(op, body, n, prefill, encoded)

    async def _finish(self, op: str, body: dict[str, Any], n: int, prefill: str | None, looked_up: str | None) -> Any:
        """`looked_up`: the body's canonical JSON when sample 0 was already looked up and not found."""
        if self._bridge._store is None and self._started and (n == 1 or self.capabilities.n_samples):
            # Cache off: straight to the transport, one coroutine frame fewer on every resumption.
            started = time.perf_counter()
            response = await self._send(op, body, n, None)
            latency = time.perf_counter() - started
            results = [_Result.fresh(r, latency) for r in self._per_sample(response, n, False)]
        else:
            results = await self._run(op, body, n, looked_up=looked_up)
        completions = [self._completion(r, i, prefill, chat=op == "chat") for i, r in enumerate(results)]
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
    def complete(  # type: ignore[overload-overlap]
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
    ) -> Awaitable[Completion]: ...

    @overload
    def complete(
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
    ) -> Awaitable[list[Completion]]: ...

    def complete(
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
    ) -> Awaitable[Completion | list[Completion]]:
        """A text completion (await it) of a prompt string or a list of token ids (vLLM, llama.cpp)."""
        if not self.capabilities.completions:
            raise UnsupportedOperation(f"{self.name}: its API has no text completions endpoint; use chat")
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
        if self.extra_body:
            body.update(self.extra_body)
        if extra_body:
            body.update(extra_body)
        return self._answer_from_cache_or_run("completions", body, n, None)

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

    # -- templates and tokens -------------------------------------------------------------------------------

    async def render(self, messages: list[Message]) -> str:
        """The model's chat template applied by its server, with the generation prompt (cached)."""
        validate_messages(messages)
        if not self.capabilities.chat_template:
            raise UnsupportedOperation(f"{self.name}: its server does not render chat templates for cotbridge")

        async def compute() -> dict[str, Any]:
            return {"prompt": await self.provider.render_chat(messages)}

        result = (await self._run("render", {"messages": messages}, 1, compute=compute))[0]
        payload = json.loads(result.raw) if isinstance(result.raw, str) else result.raw
        return str(payload["prompt"])

    async def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        """Token ids of text by the server's tokenizer (cached). add_special defaults to what the server does to a
        rendered chat prompt, so `tokenize(await render(...))` gives the ids its chat endpoint would use."""
        if not self.capabilities.tokenize:
            raise UnsupportedOperation(f"{self.name}: its server offers no tokenizer to cotbridge")
        special = self.provider.chat_adds_special if add_special is None else add_special

        async def compute() -> dict[str, Any]:
            return {"tokens": await self.provider.tokenize(text, add_special=special)}

        result = (await self._run("tokenize", {"text": text, "add_special": special}, 1, compute=compute))[0]
        payload = json.loads(result.raw) if isinstance(result.raw, str) else result.raw
        return [int(t) for t in payload["tokens"]]

    # -- chains of thought ------------------------------------------------------------------------------------

    async def explain(
        self,
        problem: Problem,
        *,
        temperature: float = 0.0,
        seed: int | None = None,
        samples: int = 1,
        max_tokens: int = transfer.DEFAULT_COT_TOKENS,
        answer_max_tokens: int = transfer.DEFAULT_ANSWER_TOKENS,
        answer_prefix: str = "",
    ) -> Explanation:
        """This model's CoT for a problem (greedy by default), with the answer it gave after it.

        With samples > 1 use `explain_samples`.
        """
        (first,) = await transfer.explain(
            self,
            problem,
            temperature=temperature,
            seed=seed,
            samples=1,
            max_tokens=max_tokens,
            answer_max_tokens=answer_max_tokens,
            answer_prefix=answer_prefix,
        )
        return first

    async def explain_samples(
        self,
        problem: Problem,
        samples: int,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        max_tokens: int = transfer.DEFAULT_COT_TOKENS,
        answer_max_tokens: int = transfer.DEFAULT_ANSWER_TOKENS,
        answer_prefix: str = "",
    ) -> list[Explanation]:
        """`samples` sampled CoTs (each cached as its own sample, so a rerun reuses them)."""
        return await transfer.explain(
            self,
            problem,
            temperature=temperature,
            seed=seed,
            samples=samples,
            max_tokens=max_tokens,
            answer_max_tokens=answer_max_tokens,
            answer_prefix=answer_prefix,
        )

    async def answer(
        self,
        problem: Problem,
        explanation: Explanation | str | None = None,
        *,
        mode: InjectionMode | None = None,
        max_tokens: int = transfer.DEFAULT_ANSWER_TOKENS,
        cot_max_tokens: int = transfer.DEFAULT_COT_TOKENS,
        answer_prefix: str = "",
    ) -> Answer:
        """This model's greedy answer given `explanation`: another model's CoT (transfer), "" (empty condition:
        the reasoning channel opened and closed), or None (the model reasons itself). `mode` is "prefill" or
        "context"; the default is prefill wherever the model can take it. `cot_max_tokens` bounds the model's
        own CoT when explanation is None."""
        return await transfer.answer(
            self,
            problem,
            explanation,
            mode=mode,
            max_tokens=max_tokens,
            cot_max_tokens=cot_max_tokens,
            answer_prefix=answer_prefix,
        )

    # -- the cache path ---------------------------------------------------------------------------------------

    async def _run(
        self, op: str, body: dict[str, Any], n: int, compute: Any = None, *, looked_up: str | None = None
    ) -> list[_Result]:
        """One result per sample: from the cache where stored, else from the server (and then stored).

        `looked_up` is the body's canonical JSON when the caller already looked up sample 0 and missed it.
        """
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        if not self._started:
            await self._start()
        bridge = self._bridge
        store = bridge._store
        if store is None:
            return await self._fetch(op, body, n, compute)
        key_of = self._key_prefix(op)
        encoded = looked_up if looked_up is not None else canonical_json(body)
        keys = [key_of(encoded, i) for i in range(n)]
        results: list[_Result | None] = [None] * n
        for i, key in enumerate(keys):
            if i == 0 and looked_up is not None:
                continue
            hit = store.get(key, self._stats_key)
            if hit is not None:
                results[i] = _Result.from_cache(hit)
                bridge.stats.cache_hits += 1
        missing = [i for i in range(n) if results[i] is None]
        if not missing:
            return results  # type: ignore[return-value]
        batches = self._sample_batches(missing)
        fetched = await asyncio.gather(*(self._fetch_shared(op, body, batch, keys, compute) for batch in batches))
        for batch, batch_results in zip(batches, fetched, strict=True):
            for i, result in zip(batch, batch_results, strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    async def _fetch_shared(
        self, op: str, body: dict[str, Any], indices: list[int], keys: list[str], compute: Any
    ) -> list[_Result]:
        """Fetches and stores the given samples; a caller asking for the same samples meanwhile shares the call."""
        batch_keys = [keys[i] for i in indices]
        fetched, joined = await self._bridge._inflight.run(
            "|".join(batch_keys), lambda: self._fetch_and_store(op, body, indices, batch_keys, compute)
        )
        if joined:
            self._bridge.stats.deduplicated += 1
            return [result.shared() for result in fetched]
        return fetched

    def _sample_batches(self, indices: list[int]) -> list[list[int]]:
        """Samples per network call: all in one call (`n`), or, where the API has no `n`, one call per sample,
        each stored as it arrives so a failure of one loses none of the others."""
        return [indices] if self.capabilities.n_samples or len(indices) == 1 else [[i] for i in indices]

    async def _fetch(self, op: str, body: dict[str, Any], n: int, compute: Any) -> list[_Result]:
        """n samples, not cached: one network call, or one per sample (see `_sample_batches`)."""
        if len(batches := self._sample_batches(list(range(n)))) > 1:
            parts = await asyncio.gather(*(self._fetch(op, body, 1, compute) for _ in batches))
            return [result for part in parts for result in part]
        started = time.perf_counter()
        response = await self._send(op, body, n, compute)
        latency = time.perf_counter() - started
        return [_Result.fresh(r, latency) for r in self._per_sample(response, n, compute is not None)]

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
        call = self.provider.chat if op == "chat" else self.provider.completions
        if self.price is not None and self._bridge.budget is not None:
            call = functools.partial(self._send_within_budget, call)
        return call(body) if count == 1 else call({**body, "n": count})

    async def _send_within_budget(self, call: Any, body: dict[str, Any]) -> dict[str, Any]:
        """A priced request under a budget: refused before it could pass the limit, then charged what it cost."""
        budget, price = self._bridge.budget, self.price
        assert budget is not None and price is not None
        # SDK providers know what the vendor request adds (a thinking budget on top of max_tokens).
        estimate = getattr(self.provider, "estimate_tokens", estimate_tokens)
        reserved = budget.reserve(price, estimate(body), self.name)
        actual = 0.0
        try:
            response: dict[str, Any] = await call(body)
            actual = price.cost(parse_usage(response))
            return response
        finally:
            budget.settle(reserved, actual)

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
        head = {k: v for k, v in response.items() if k != "choices" and k != "usage"}
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        shares = _split_usage(usage or {}, count)
        pairs = zip(choices[:count], shares, strict=True)
        return [{**head, "usage": share, "choices": [{**c, "index": 0}]} for c, share in pairs]

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
