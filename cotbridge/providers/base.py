"""What every provider offers: capabilities and the operations the bridge calls. Nothing here knows studies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cotbridge.types import ContinuationScore, Message


@dataclass(slots=True, frozen=True)
class Capabilities:
    """What a model's server can do, as far as cotbridge relies on it.

    prompt_scoring: how `score()` works on it: "prompt-logprobs" (echo / prompt logprobs, vLLM and most
    open-model hosts), "forced-grammar" (llama.cpp), or None when it cannot score.
    """

    chat: bool = True
    completions: bool = True
    logprobs: bool = True
    prompt_scoring: str | None = None
    token_id_prompts: bool = False
    tokenize: bool = False
    chat_template: bool = False
    reasoning_field: bool = False
    n_samples: bool = True
    # Whether a final assistant message is continued (a prefill); hosted reasoning APIs reject or ignore one.
    assistant_prefill: bool = True
    # "raw": the CoT itself comes back (open models, DeepSeek's reasoning_content); "summary": only a summary
    # (OpenAI, Gemini); "none": no reasoning at all. Only a raw CoT can be transferred to another model.
    reasoning_visibility: str = "raw"


class Provider(Protocol):
    """A model on one server, spoken to in its own dialect.

    `chat` and `completions` take a complete request body and return the server's JSON; `score` returns the
    continuation's token log-probs plus the JSON to cache. `endpoint_id` is the endpoint's identity in cache keys.
    """

    name: str
    model_name: str
    served_model: str
    endpoint_id: str
    capabilities: Capabilities

    async def start(self) -> None: ...

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def score(self, prompt: str | list[int] | list[Message], continuation: str) -> ContinuationScore: ...

    async def health(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
