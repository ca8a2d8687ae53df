"""A model on one endpoint: builds the request bodies of chat, text completion, scoring, chat rendering and
tokenizing, and hands them to its request pipeline (cache, sharing, budget, transport).

The client knows nothing of chains of thought: explaining and answering with a CoT are functions of
`cotbridge.cot` that take Models.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, overload

from cotbridge.client.pipeline import RequestPipeline
from cotbridge.errors import ConfigError, UnsupportedOperation
from cotbridge.formats import ThinkingFormat
from cotbridge.options import InjectionMode, ModelOptions, Price
from cotbridge.providers.base import Capabilities, Provider
from cotbridge.records import BridgeStats, Completion, ContinuationScore, Message, TokenLogprob

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


class Model:
    """One model on one endpoint. Get it from `Bridge.model(...)`."""

    def __init__(
        self, provider: Provider, pipeline: RequestPipeline, options: ModelOptions, thinking_format: ThinkingFormat
    ) -> None:
        self.provider = provider
        self.options = options
        self.name: str = provider.model_name
        self.price: Price | None = options.price
        self.extra_body = dict(options.extra_body)
        self.thinking_format = thinking_format
        self.injection: InjectionMode | None = options.injection
        self._pipeline = pipeline

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self.provider.capabilities

    @property
    def stats(self) -> BridgeStats:
        """The statistics of the bridge this model belongs to (shared by its models)."""
        return self._pipeline.stats

    async def start(self) -> None:
        """Starts the model's server where cotbridge runs one (the embedded models); requests do it on their own."""
        await self._pipeline.start()

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
        if prefill is not None:
            body.update(self.provider.prefill_fields())
        if self.extra_body:
            body.update(self.extra_body)
        if extra_body:
            body.update(extra_body)
        return self._pipeline.submit("chat", body, n, prefill)

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
        return self._pipeline.submit("completions", body, n, None)

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
            raise self.provider.cannot_score("it offers no prompt log-probs")
        body = {"prompt": prompt, "continuation": continuation}

        async def compute() -> dict[str, Any]:
            result: ContinuationScore = await self.provider.score(prompt, continuation)
            return {
                "method": result.method,
                "tokens": [[t.token, t.logprob, t.token_id] for t in result.tokens],
            }

        result = (await self._pipeline.results("score", body, 1, compute=compute))[0]
        payload = result.payload
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

        result = (await self._pipeline.results("render", {"messages": messages}, 1, compute=compute))[0]
        return str(result.payload["prompt"])

    async def tokenize(self, text: str, *, add_special: bool | None = None) -> list[int]:
        """Token ids of text by the server's tokenizer (cached). add_special defaults to what the server does to a
        rendered chat prompt, so `tokenize(await render(...))` gives the ids its chat endpoint would use."""
        if not self.capabilities.tokenize:
            raise UnsupportedOperation(f"{self.name}: its server offers no tokenizer to cotbridge")
        special = self.provider.chat_adds_special if add_special is None else add_special

        async def compute() -> dict[str, Any]:
            return {"tokens": await self.provider.tokenize(text, add_special=special)}

        body = {"text": text, "add_special": special}
        result = (await self._pipeline.results("tokenize", body, 1, compute=compute))[0]
        return [int(t) for t in result.payload["tokens"]]
