"""OpenAI-compatible servers over aiohttp, with the dialects of vLLM and llama.cpp.

Wire facts (vLLM's and llama.cpp's server documentation): vLLM serves `/tokenize` and `/health` at the server
root, scores a prompt with `echo=true, logprobs=0` on `/v1/completions`, and continues an assistant prefill with
`continue_final_message=true`. llama.cpp's server ignores `echo`; it scores a continuation when the
continuation is forced token by token with a token-id grammar (`<[id]>`), and returns each forced token's
log-prob from the model's raw distribution (checked against its own greedy log-probs). Its logprobs come as
`logprobs.content[]`.

Hosted APIs in this format differ where cotbridge relies on them, and their capabilities say how:
`max_tokens_includes_cot` (DeepSeek's and OpenRouter's output limit bounds the reasoning too: thinking room is
added, as the SDK providers add it), `rejected_params` (refused before sending) and `prompt_scoring` (legacy echo
log-probs in the choice, or Together's top-level `prompt[]`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from cotbridge.errors import APIStatusError, MalformedResponseError, UnsupportedOperation
from cotbridge.providers.base import BaseProvider, Capabilities
from cotbridge.providers.capabilities import provider_defaults
from cotbridge.providers.ratelimit import estimate_tokens
from cotbridge.providers.response import parse_logprobs
from cotbridge.providers.sdk import DEFAULT_THINKING_BUDGET
from cotbridge.providers.transport import Endpoint
from cotbridge.providers.wire import (
    CHAT,
    JSON,
    MODELS,
    PROMPT,
    PROMPT_FIELD_TEXT,
    ROUTED_CHAT,
    TEXT,
    TOKEN_IDS,
    TOKEN_PIECES,
    Wire,
)
from cotbridge.records import ContinuationScore, Message, TokenLogprob

# Sampling fields cotbridge may send on its own (temperature on every chat): where a vendor refuses one it is left
# out and the vendor samples at its own temperature, as the SDK providers do (`sdk.sampling_free`).
_SAMPLING = frozenset({"temperature", "top_p", "seed"})


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _thinking_switch(body: dict[str, Any]) -> bool | None:
    """Whether a request turns thinking on (True) or off (False) with a switch the OpenAI-format hosts document, or
    None: DeepSeek's `thinking.type`, OpenRouter's `reasoning` (`enabled`, effort "none"), `reasoning_effort`."""
    thinking, reasoning, effort = body.get("thinking"), body.get("reasoning"), body.get("reasoning_effort")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        return bool(thinking["type"] == "enabled")
    if isinstance(reasoning, dict) and reasoning:
        return reasoning.get("enabled") is not False and reasoning.get("effort") != "none"
    return None if effort is None else effort != "none"


class OpenAICompatProvider(BaseProvider):
    """Any server that speaks the OpenAI chat and completions wire format.

    `name` defaults to the class's and `capabilities` to that name's defaults in the bundled data; a hosted API in
    this format gives its own, and `chat_extra` holds the fields it wants in every chat request (OpenRouter's
    `reasoning`). A chat body is reshaped (`shape`) only where the capabilities or `chat_extra` call for it, decided
    once here: a plain server's chat costs one attribute test."""

    name = "openai-compatible"
    chat_wire: Wire = CHAT
    # Set by __init__ from the capabilities; a subclass with an __init__ of its own (local/) reshapes nothing.
    _room = False
    _shaping = False
    # The echo request a generic score sends: part of its cache key, so a score asked another way is not reused.
    score_request: dict[str, Any] | None = {"max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}

    def __init__(
        self,
        model_name: str,
        served_model: str,
        endpoint: Endpoint,
        *,
        name: str | None = None,
        capabilities: Capabilities | None = None,
        chat_extra: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.served_model = served_model
        self.endpoint = endpoint
        self.endpoint_id = endpoint.public_url
        self.name = name or type(self).name
        self.capabilities = caps = capabilities or provider_defaults(self.name)
        self.chat_extra = dict(chat_extra or {})
        # Thinking a request parameter asks for (or that is on by default) and that the output limit bounds too.
        self._room = (
            caps.max_tokens_includes_cot
            and caps.reasoning_model
            and (caps.thinking.on_by_default or caps.thinking.control != "none")
        )
        self._shaping = bool(self.chat_extra or caps.rejected_params) or self._room

    # Plain functions returning the transport's coroutine: every coroutine frame between a caller and the socket
    # is re-entered on each resumption, and on the hot path those frames cost more than the work they do.
    def chat(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        if self._shaping:
            body = self.shape(body)
        return self.endpoint.request("POST", "/chat/completions", body, model=self.model_name, wire=self.chat_wire)

    def completions(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        return self.endpoint.request("POST", "/completions", body, model=self.model_name, wire=TEXT)

    def sent_body(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if op == "chat":
            return self.shape(body) if self._shaping else body
        if op == "score" and self.score_request is not None:
            return {**body, "scored_with": {**self.score_request, "shape": self.capabilities.prompt_scoring}}
        return body

    def estimate_tokens(self, body: dict[str, Any]) -> int:
        """Tokens a request may count, thinking room included (for budgets and tokens-per-minute limits)."""
        return estimate_tokens(self.shape(body) if self._shaping and "messages" in body else body)

    def shape(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat request as the vendor gets it: `chat_extra` under the body; while the model thinks, a parameter
        the vendor refuses is an UnsupportedOperation here (a sampling one cotbridge sent on its own is left out),
        and where `max_tokens` bounds the reasoning too, `thinking_budget` (cotbridge's, default
        DEFAULT_THINKING_BUDGET) is added to it, so max_tokens stays the answer's room."""
        body = {**self.chat_extra, **body}
        budget = int(body.pop("thinking_budget", DEFAULT_THINKING_BUDGET))
        thinking = self.capabilities.thinking
        switch = _thinking_switch(body)
        if thinking.can_disable and switch is False:
            return body
        for name in self.capabilities.rejected_params:
            if name in body and name in _SAMPLING:
                del body[name]
            elif name in body:
                raise UnsupportedOperation(
                    f"{self.model_name}: {self.name} answers {name!r} with an error for this model while it thinks "
                    "(its capabilities' rejected_params); leave it out (e.g. logprobs=None)"
                    + (", or turn thinking off" if thinking.can_disable else "")
                )
        if self._room and (thinking.on_by_default or switch or not thinking.can_disable):
            for limit in ("max_tokens", "max_completion_tokens"):
                if body.get(limit) is not None:
                    body[limit] = int(body[limit]) + budget
        return body

    async def health(self) -> dict[str, Any]:
        """Lists the served models; raises ProviderError when the server is down."""
        listing = await self.endpoint.request("GET", "/models", model=self.model_name, wire=MODELS)
        served = [m.get("id") for m in (listing.get("data") or []) if isinstance(m, dict)]
        return {"ok": True, "served_models": served}

    def cannot_score(self, why: str) -> UnsupportedOperation:
        return UnsupportedOperation(
            f"{self.model_name} at {self.endpoint.public_url} cannot score a continuation: {why}. "
            "Serve the model with vLLM (`vllm/...`) or llama.cpp (`llamacpp/...`), which can."
        )

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        """Generic servers: echo the prompt plus continuation and keep the continuation's tokens, read from the
        vendor's shape of echoed log-probs (`capabilities.prompt_scoring`)."""
        if not isinstance(prompt, str):
            raise self.cannot_score(
                "a generic OpenAI-compatible server offers no tokenizer or chat template to cotbridge; "
                "pass the prompt as rendered text"
            )
        in_field = self.capabilities.prompt_scoring == "prompt-field"
        body = {"model": self.served_model, "prompt": prompt + continuation, **(self.score_request or {})}
        wire = PROMPT_FIELD_TEXT if in_field else TEXT
        try:
            response = await self.endpoint.request("POST", "/completions", body, model=self.model_name, wire=wire)
        except APIStatusError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise self.cannot_score(f"it refused echo with logprobs ({exc.detail})") from None
            raise
        try:
            picked = (
                prompt_field_tokens(response, continuation)
                if in_field
                else echoed_tokens(response, prompt, continuation)
            )
        except ValueError as exc:
            raise self.cannot_score(str(exc)) from None
        return ContinuationScore(tokens=picked, method="prompt-logprobs", model=self.model_name)


def _continuation_tokens(
    tokens: list[str], values: list[float | None], ids: list[int] | None, picked: list[int]
) -> tuple[TokenLogprob, ...]:
    """The tokens at the `picked` positions; a continuation token without a log-prob is an error, not a gap."""
    if not picked:
        raise ValueError("its echoed tokens did not cover the continuation")
    token_ids: list[int | None] = list(ids) if ids is not None and len(ids) == len(tokens) else [None] * len(tokens)
    scored = []
    for i in picked:
        value = values[i]
        if value is None:
            raise ValueError("it gave no log-prob for a token of the continuation (an empty prompt?)")
        scored.append(TokenLogprob(token=tokens[i], logprob=float(value), token_id=token_ids[i]))
    return tuple(scored)


def echoed_tokens(response: dict[str, Any], prompt: str, continuation: str) -> tuple[TokenLogprob, ...]:
    """The continuation's tokens in legacy echo log-probs (OpenAI's completions, Fireworks): parallel lists with
    character offsets into the echoed text, which runs on past the prompt into the generated token; that one is no
    part of the continuation. A token straddling the prompt's end counts to the continuation, as in vLLM's scoring.
    Raises ValueError saying what is missing."""
    choice = (response.get("choices") or [{}])[0]
    logprobs = choice.get("logprobs") or {}
    offsets, tokens, values = logprobs.get("text_offset"), logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not offsets or not tokens or not values:
        raise ValueError("it returned no prompt log-probs for echo=true")
    # Offsets count from the echoed text's start, which may hold what the server put before the prompt (a BOS).
    base = max((choice.get("text") or "").find(prompt + continuation), 0)
    start, end = base + len(prompt), base + len(prompt) + len(continuation)
    picked = [i for i, (t, off) in enumerate(zip(tokens, offsets, strict=False)) if off < end and off + len(t) > start]
    return _continuation_tokens(tokens, values, logprobs.get("token_ids"), picked)


def prompt_field_tokens(response: dict[str, Any], continuation: str) -> tuple[TokenLogprob, ...]:
    """The continuation's tokens in Together's `prompt[]`: the prompt's tokens and log-probs without offsets, and
    its text may start with a BOS written out, so they are counted back from the end, which is the continuation's.
    Raises ValueError saying what is missing."""
    parts = response.get("prompt") or [{}]
    logprobs = parts[0].get("logprobs") or {}
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not tokens or not values or len(values) != len(tokens):
        raise ValueError("it returned no prompt log-probs in its `prompt[]` for echo=true")
    if not "".join(tokens).endswith(continuation):
        raise ValueError("its echoed prompt tokens do not end with the continuation")
    picked: list[int] = []
    covered = 0
    for i in range(len(tokens) - 1, -1, -1):
        if covered >= len(continuation):
            break
        picked.insert(0, i)
        covered += len(tokens[i])
    return _continuation_tokens(tokens, values, logprobs.get("token_ids"), picked)


class OpenRouterProvider(OpenAICompatProvider):
    """OpenRouter: its chat gives the reasoning as `reasoning` and/or `reasoning_details` (`wire.ROUTED_CHAT`)."""

    name = "openrouter"
    chat_wire = ROUTED_CHAT


class _TokenizingProvider(OpenAICompatProvider):
    """Servers with a tokenizer and chat template endpoint: continuations are scored on exact token ids."""

    score_request = None  # scored on token ids, by requests of their own

    async def _root_request(self, path: str, body: dict[str, Any], wire: Wire) -> Any:
        # /tokenize, /detokenize and /apply-template live at the server root, beside /v1.
        return await self.endpoint.request("POST", path, body, model=self.model_name, wire=wire, root=True)

    async def continuation_ids(
        self, prompt: str | list[int] | list[Message], continuation: str
    ) -> tuple[list[int], list[int]]:
        """(prompt ids, continuation ids), split where the tokenizations of prompt and prompt+continuation part.

        A token that straddles the boundary counts to the continuation, so nothing of it is scored twice or lost.
        """
        if isinstance(prompt, list) and (not prompt or isinstance(prompt[0], int)):
            prompt_ids = [int(t) for t in prompt]  # type: ignore[arg-type]
            cont_ids = await self.tokenize(continuation, add_special=False)
            return prompt_ids, cont_ids
        if isinstance(prompt, list):
            text = await self.render_chat(prompt)  # type: ignore[arg-type]
            add_special = self.chat_adds_special
        else:
            text = prompt
            add_special = True
        prompt_ids = await self.tokenize(text, add_special=add_special)
        full_ids = await self.tokenize(text + continuation, add_special=add_special)
        k = _common_prefix_length(prompt_ids, full_ids)
        if k == len(full_ids):
            raise UnsupportedOperation(
                f"{self.model_name}: the continuation {continuation[:40]!r} adds no tokens to the prompt"
            )
        return full_ids[:k], full_ids[k:]


class VLLMProvider(_TokenizingProvider):
    """vLLM: token-id prompts, `/tokenize` with chat messages, prompt log-probs through `echo`."""

    name = "vllm"

    def prefill_fields(self) -> dict[str, Any]:
        return {"add_generation_prompt": False, "continue_final_message": True}

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        result = await self._root_request(
            "/tokenize", {"model": self.served_model, "prompt": text, "add_special_tokens": add_special}, TOKEN_IDS
        )
        return [int(t) for t in result["tokens"]]

    async def render_chat(self, messages: list[Message]) -> str:
        ids = await self._root_request(
            "/tokenize",
            {
                "model": self.served_model,
                "messages": messages,
                "add_generation_prompt": True,
                "add_special_tokens": False,
            },
            TOKEN_IDS,
        )
        detok = await self._root_request("/detokenize", {"model": self.served_model, "tokens": ids["tokens"]}, PROMPT)
        return str(detok["prompt"])

    async def health(self) -> dict[str, Any]:
        await self.endpoint.request("GET", "/health", model=self.model_name, root=True, wire=None)
        return await super().health()

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        prompt_ids, cont_ids = await self.continuation_ids(prompt, continuation)
        full = prompt_ids + cont_ids
        response = await self.completions(
            {
                "model": self.served_model,
                "prompt": full,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 0,
            }
        )
        logprobs = (response.get("choices") or [{}])[0].get("logprobs") or {}
        tokens = logprobs.get("tokens") or []
        values = logprobs.get("token_logprobs") or []
        if len(values) < len(full) or None in values[len(prompt_ids) : len(full)]:
            raise MalformedResponseError(
                f"echo returned {len(values)} prompt log-probs for a {len(full)}-token prompt, or none for some",
                model=self.model_name,
                endpoint=self.endpoint.public_url,
            )
        start = len(prompt_ids)
        picked = tuple(
            TokenLogprob(token=tokens[i] if i < len(tokens) else "", logprob=float(values[i]), token_id=full[i])
            for i in range(start, len(full))
        )
        return ContinuationScore(tokens=picked, method="prompt-logprobs", model=self.model_name)


class LlamaCppProvider(_TokenizingProvider):
    """llama.cpp's server: `/apply-template`, `/tokenize`, and scoring by a forced token-id grammar."""

    name = "llamacpp"
    chat_adds_special = True

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        result = await self._root_request("/tokenize", {"content": text, "add_special": add_special}, TOKEN_IDS)
        return [int(t) for t in result["tokens"]]

    async def render_chat(self, messages: list[Message]) -> str:
        result = await self._root_request("/apply-template", {"messages": messages}, PROMPT)
        return str(result["prompt"])

    async def health(self) -> dict[str, Any]:
        await self.endpoint.request("GET", "/health", model=self.model_name, root=True, wire=JSON)
        return await super().health()

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        prompt_ids, cont_ids = await self.continuation_ids(prompt, continuation)
        if not continuation.isascii() and await self._has_partial_utf8_pieces(continuation):
            return await self._score_text_grammar(prompt_ids, continuation, len(cont_ids))
        grammar = "root ::= " + " ".join(f"<[{t}]>" for t in cont_ids)
        response = await self.completions(
            {
                "model": self.served_model,
                "prompt": prompt_ids,
                "grammar": grammar,
                "max_tokens": len(cont_ids),  # no token after the forced ones: the grammar is spent
                "temperature": 0.0,
                "logprobs": 1,
            }
        )
        choice = (response.get("choices") or [{}])[0]
        forced = parse_logprobs(choice.get("logprobs")) or ()
        got = [t.token_id for t in forced[: len(cont_ids)]]
        if got != cont_ids:
            raise MalformedResponseError(
                f"the forced continuation came back as tokens {got[:8]}..., expected {cont_ids[:8]}...; "
                "this llama.cpp build may not support token-id grammars (`<[id]>`), update it",
                model=self.model_name,
                endpoint=self.endpoint.public_url,
            )
        return ContinuationScore(tokens=tuple(forced[: len(cont_ids)]), method="forced-grammar", model=self.model_name)

    async def _has_partial_utf8_pieces(self, text: str) -> bool:
        """Whether the tokenizer spells part of `text` with byte tokens that are not UTF-8 on their own: llama.cpp's
        grammar engine rejects such a token in a token-id grammar ("empty grammar stack")."""
        request = {"content": text, "add_special": False, "with_pieces": True}
        result = await self._root_request("/tokenize", request, TOKEN_PIECES)
        return any(not isinstance(t.get("piece"), str) for t in result.get("tokens", []) if isinstance(t, dict))

    async def _score_text_grammar(self, prompt_ids: list[int], continuation: str, n_tokens: int) -> ContinuationScore:
        """Fallback for byte-token continuations: force the text itself. The model then picks its own (greedy)
        tokenization of the forced text, so the tokens may differ from the canonical ones; the method says so."""
        escaped = continuation.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        response = await self.completions(
            {
                "model": self.served_model,
                "prompt": prompt_ids,
                "grammar": f'root ::= "{escaped}"',
                "max_tokens": 4 * n_tokens + 8,
                "temperature": 0.0,
                "logprobs": 1,
            }
        )
        choice = (response.get("choices") or [{}])[0]
        entries = (choice.get("logprobs") or {}).get("content") or []
        target = len(continuation.encode())
        tokens, seen = [], 0
        for entry, parsed in zip(entries, parse_logprobs(choice.get("logprobs")) or (), strict=False):
            if seen >= target:
                break
            seen += len(entry.get("bytes") or parsed.token.encode())
            tokens.append(parsed)
        if seen != target:
            raise MalformedResponseError(
                f"the forced text came back as {seen} bytes, expected {target}",
                model=self.model_name,
                endpoint=self.endpoint.public_url,
            )
        return ContinuationScore(tokens=tuple(tokens), method="forced-grammar-text", model=self.model_name)
