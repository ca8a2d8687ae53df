"""What providers built on a vendor SDK share: calls run through the endpoint's bound and retry layer, SDK errors
become cotbridge errors, and answers come back in the chat-completion shape the rest of cotbridge reads.

The SDKs' own retries are off (openai: max_retries=0; litellm: num_retries=0 and max_retries=0) so that the
endpoint's retry layer is the only one, and the SDKs' exceptions never leave cotbridge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from cotbridge.errors import ProviderError
from cotbridge.providers.base import BaseProvider, Capabilities
from cotbridge.providers.ratelimit import estimate_tokens
from cotbridge.providers.transport import NO_QUOTA_CODES, Endpoint, TransientFailure
from cotbridge.providers.wire import CHAT

# Anthropic and Gemini bill thinking against the output limit, and OpenAI's reasoning tokens count against
# max_output_tokens: a request's max_tokens is kept for the visible answer and this budget is added for the
# thinking, unless the request names its own `thinking_budget`.
DEFAULT_THINKING_BUDGET = 2048


def sampling_free(body: dict[str, Any]) -> dict[str, Any]:
    """The body without sampling parameters, for reasoning models that reject them (OpenAI's o-series and GPT-5,
    Anthropic with extended thinking). They sample at their fixed temperature."""
    return {k: v for k, v in body.items() if k not in ("temperature", "top_p", "seed")}


class SDKProvider(BaseProvider):
    """A hosted model spoken to through a vendor SDK; subclasses implement `shape` and `_attempt` for one chat
    request."""

    name = "sdk"

    def __init__(
        self,
        name: str,
        model_name: str,
        served_model: str,
        endpoint: Endpoint,
        api_key: str,
        capabilities: Capabilities,
    ) -> None:
        self.name = name
        self.model_name = model_name
        self.served_model = served_model
        self.endpoint = endpoint
        self.endpoint_id = endpoint.public_url
        self.capabilities = capabilities
        self._api_key = api_key

    def chat(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        """Shapes the request for the vendor (refusing what it cannot send before anything is sent), then runs
        it as a request of the endpoint."""
        request = self.shape(body)
        return self.endpoint.call(lambda: self._translated(request), model=self.model_name)

    def sent_body(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.shape(body) if op == "chat" else body

    def estimate_tokens(self, body: dict[str, Any]) -> int:
        """Tokens a request may count, thinking budget included (for budgets and tokens-per-minute limits)."""
        return estimate_tokens(self.shape(body))

    def shape(self, body: dict[str, Any]) -> dict[str, Any]:
        """The vendor request for a chat-completion body; raises UnsupportedOperation for what it cannot carry."""
        raise NotImplementedError

    async def _translated(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = await self._attempt(request)
        except (ProviderError, TransientFailure):
            raise
        except Exception as exc:  # every SDK error, whatever its class, becomes a cotbridge error
            raise self.translate_error(exc) from None
        try:
            answer = CHAT.check(answer)
        except ValueError as exc:  # like a malformed body on any endpoint: worth another try
            raise TransientFailure(self.endpoint.malformed(self.model_name, None, f"the answer {exc}")) from None
        # The cache stores the body cotbridge was asked for; this is what the vendor got (no key in it), unless the
        # provider sent something else and said so.
        answer.setdefault("vendor_request", request)
        return answer

    async def _attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        """One call with the shaped request; returns the answer in chat-completion shape."""
        raise NotImplementedError

    def translate_error(self, exc: Exception) -> ProviderError | TransientFailure:
        """An SDK exception as a cotbridge error: timeouts and connection failures are transient, HTTP errors
        follow the endpoint's status rules (429 and 5xx transient, with the server's requested wait)."""
        import openai  # litellm's exceptions subclass openai's

        if isinstance(exc, openai.APITimeoutError):
            return self.endpoint.timeout_failure(self.model_name)
        if isinstance(exc, openai.APIConnectionError):
            return self.endpoint.connection_failure(self.model_name, exc)
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            text, headers = error_text(exc), _error_headers(exc)
            return self.endpoint.status_failure(status, text, headers, self.model_name, _error_codes(exc))
        return ProviderError(
            f"{type(exc).__name__}: {self.endpoint.redact(str(exc))[:300]}",
            model=self.model_name,
            endpoint=self.endpoint.public_url,
        )

    async def health(self) -> dict[str, Any]:
        """Hosted APIs need a paid request to prove a model works; `models check` sends one chat instead."""
        return {"ok": True, "served_models": [self.served_model]}


def error_text(exc: Exception) -> str:
    """The vendor's message of an SDK error (from its error body where there is one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message
    return getattr(exc, "message", None) or str(exc)


def _error_codes(exc: Exception) -> frozenset[str]:
    """The error's `type` and `code`: the openai SDK keeps them as attributes, litellm in the message text."""
    codes = {value for value in (getattr(exc, "type", None), getattr(exc, "code", None)) if isinstance(value, str)}
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            codes.update(value for value in (error.get("type"), error.get("code")) if isinstance(value, str))
    return frozenset(codes | _quoted_codes(str(exc)))


def _quoted_codes(text: str) -> set[str]:
    """Quota codes named in an error's text (litellm flattens the vendor's error body into its message)."""
    return {code for code in NO_QUOTA_CODES if f"'{code}'" in text or f'"{code}"' in text}


def _error_headers(exc: Exception) -> Mapping[str, str]:
    """The HTTP headers of a failed call: litellm keeps them apart (its `response` is often synthetic)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


def plain_headers(headers: Mapping[str, str] | None, prefix: str = "") -> dict[str, str]:
    """Lower-cased header names, with an SDK's prefix removed (litellm reports `llm_provider-<name>`)."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lowered = name.lower()
        if prefix and lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
        out[lowered] = str(value)
    return out
