"""The provider contract: what a model's server can do (`Capabilities`, defined beside its data in
`capabilities.py`) and the operations the client calls (`Provider`). `BaseProvider` gives every optional operation
its "cannot" answer, so a provider implements only what its server offers. Nothing here knows about chains of
thought or studies.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from cotbridge.errors import UnsupportedOperation
from cotbridge.providers.capabilities import Capabilities
from cotbridge.providers.ratelimit import estimate_tokens
from cotbridge.records import ContinuationScore, Message

__all__ = ["BaseProvider", "Capabilities", "Provider"]


class Provider(Protocol):
    """A model on one server, spoken to in its own dialect.

    `chat` and `completions` take a complete request body and return the server's JSON in the chat-completion
    shape; `score` returns the continuation's token log-probs. `endpoint_id` is the server's identity in cache
    keys. A provider never closes the endpoint it was given: the bridge owns endpoints, and other models share them.
    """

    name: str
    model_name: str
    served_model: str
    endpoint_id: str
    capabilities: Capabilities
    # Whether the server's chat endpoint adds special tokens (BOS) when it tokenizes a rendered prompt.
    chat_adds_special: bool

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def prefill_fields(self) -> dict[str, Any]: ...

    def chat(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]: ...

    def chat_sample(self, body: dict[str, Any], sample_index: int) -> Awaitable[dict[str, Any]]: ...

    def completions(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]: ...

    def sent_body(self, op: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore: ...

    async def render_chat(self, messages: list[Message]) -> str: ...

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]: ...

    def estimate_tokens(self, body: dict[str, Any]) -> int: ...

    def cannot_score(self, why: str) -> UnsupportedOperation: ...

    async def health(self) -> dict[str, Any]: ...


class BaseProvider:
    """Defaults of the contract: nothing to start or close, no prefill fields, and "cannot" for every optional
    operation. Subclasses set the names and capabilities and override what their server offers."""

    name: str = "base"
    model_name: str = ""
    served_model: str = ""
    endpoint_id: str = ""
    capabilities: Capabilities = Capabilities()
    chat_adds_special: bool = False

    async def start(self) -> None:
        """Nothing to start for a remote server; sessions open on the first request."""

    async def aclose(self) -> None:
        """Nothing of its own to close."""

    def prefill_fields(self) -> dict[str, Any]:
        """Fields a chat body needs so that the server continues a final assistant message instead of answering it."""
        return {}

    def chat(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        raise UnsupportedOperation(f"{self.model_name}: {self.name} has no chat endpoint")

    def chat_sample(self, body: dict[str, Any], sample_index: int) -> Awaitable[dict[str, Any]]:
        """Sample `sample_index` (above 0) of a request whose API has no `n`: the same request again, which a live
        server answers anew. A provider that must tell the samples apart itself (a batch job's ids) overrides it."""
        return self.chat(body)

    def completions(self, body: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        raise UnsupportedOperation(f"{self.model_name}: {self.name} has no text completions endpoint; use chat")

    def sent_body(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """The request as this provider sends it for a `chat` or `completions` body. Cache keys are computed from it,
        so a change in how a vendor is asked (thinking parameters, a capability override) is a new request."""
        return body

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore:
        raise self.cannot_score(f"{self.name} returns no prompt log-probs")

    async def render_chat(self, messages: list[Message]) -> str:
        raise UnsupportedOperation(f"{self.model_name}: its server does not render chat templates for cotbridge")

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        raise UnsupportedOperation(f"{self.model_name}: its server offers no tokenizer to cotbridge")

    def estimate_tokens(self, body: dict[str, Any]) -> int:
        """Tokens a request may count, for budgets and tokens-per-minute limits."""
        return estimate_tokens(body)

    def cannot_score(self, why: str) -> UnsupportedOperation:
        return UnsupportedOperation(f"{self.model_name} cannot score a continuation: {why}")

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "served_models": [self.served_model]}
