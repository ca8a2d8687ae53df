"""Hosted APIs that speak the OpenAI chat format, over the same aiohttp transport as local servers.

What each exposes differs (DESIGN.md, "Hosted"; the providers' API references): DeepSeek returns the reasoning of
`deepseek-reasoner` in `reasoning_content`; OpenRouter returns a unified `reasoning` field when asked with its
`reasoning` parameter; Together and Fireworks serve open reasoning models with raw `<think>` text and echo
log-probs on their completions endpoints. None of them renders a chat template or takes token ids for cotbridge,
so a foreign CoT reaches these models in `context` mode only. Keys come only from environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cotbridge.providers.base import Capabilities
from cotbridge.providers.openai_compat import OpenAICompatProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class HostedSpec:
    """One hosted API: where it is, which variable holds its key, what it can do, what to add to a request."""

    name: str
    base_url: str
    key_env: str
    capabilities: Capabilities
    chat_extra: dict[str, Any] = field(default_factory=dict)


HOSTED: dict[str, HostedSpec] = {
    spec.name: spec
    for spec in [
        HostedSpec(
            "deepseek",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            Capabilities(completions=False, reasoning_field=True, n_samples=False),
        ),
        HostedSpec(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            Capabilities(completions=False, reasoning_field=True, n_samples=False),
            chat_extra={"reasoning": {"enabled": True}},
        ),
        HostedSpec(
            "together",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            Capabilities(prompt_scoring="prompt-logprobs"),
        ),
        HostedSpec(
            "fireworks",
            "https://api.fireworks.ai/inference/v1",
            "FIREWORKS_API_KEY",
            Capabilities(prompt_scoring="prompt-logprobs"),
        ),
    ]
}


class HostedProvider(OpenAICompatProvider):
    """A hosted OpenAI-format API: the generic dialect plus the provider's own request fields."""

    def __init__(self, spec: HostedSpec, model_name: str, served_model: str, endpoint: Endpoint) -> None:
        super().__init__(model_name, served_model, endpoint)
        self.spec = spec
        self.name = spec.name
        self.capabilities = spec.capabilities

    def chat(self, body: dict[str, Any]) -> Any:
        if self.spec.chat_extra:
            body = {**self.spec.chat_extra, **body}
        return super().chat(body)
