"""The hosted APIs cotbridge speaks to, with a capability table per provider and model family.

What each exposes differs (DESIGN.md, "Hosted"; the providers' API references): DeepSeek returns the reasoning of
`deepseek-reasoner` in `reasoning_content`; OpenRouter returns a unified `reasoning` field when asked with its
`reasoning` parameter; Together and Fireworks serve open reasoning models with raw `<think>` text and echo
log-probs on their completions endpoints. These four speak the OpenAI chat format and share the aiohttp transport.
OpenAI's reasoning models (o-series, GPT-5) return only a summary of their reasoning, through the Responses API
(openai SDK); Anthropic's Claude 4 models return summarized thinking (Claude 3.7 the full thinking) and Gemini 2.5+
thought summaries, through litellm. None of them renders a chat template or takes token ids for cotbridge, so a
foreign CoT reaches every hosted model in `context` mode, and only a raw CoT can be transferred from one.
Keys come only from environment variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from cotbridge.providers.base import Capabilities
from cotbridge.providers.openai_compat import OpenAICompatProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class HostedSpec:
    """One hosted API: where it is, which variable holds its key, how cotbridge talks to it ("http": the aiohttp
    transport; "openai-sdk"; "litellm"), what its models can do, and what to add to each chat request.

    families: (regex on the model id, capabilities) pairs; the first match overrides `capabilities`."""

    name: str
    base_url: str
    key_env: str
    capabilities: Capabilities
    client: str = "http"
    families: tuple[tuple[str, Capabilities], ...] = ()
    chat_extra: dict[str, Any] = field(default_factory=dict)

    def capabilities_for(self, model_id: str) -> Capabilities:
        for pattern, capabilities in self.families:
            if re.search(pattern, model_id.lower()):
                return capabilities
        return self.capabilities


# A hosted chat model reached through an SDK: chat only, one sample per request, no scoring or token ids.
_SDK_CHAT = Capabilities(
    completions=False, logprobs=False, reasoning_field=True, n_samples=False, assistant_prefill=False
)
_SUMMARY = replace(_SDK_CHAT, reasoning_visibility="summary")
_NO_REASONING = replace(_SDK_CHAT, reasoning_field=False, reasoning_visibility="none")

HOSTED: dict[str, HostedSpec] = {
    spec.name: spec
    for spec in [
        HostedSpec(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            replace(_NO_REASONING, logprobs=True),
            client="openai-sdk",
            families=((r"^(o\d|gpt-5|codex)", _SUMMARY),),
        ),
        HostedSpec(
            "anthropic",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            _NO_REASONING,
            client="litellm",
            families=(
                (r"claude-3-7", _SDK_CHAT),
                (r"claude-(opus|sonnet|haiku)-4|claude-4", _SUMMARY),
            ),
        ),
        HostedSpec(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            _NO_REASONING,
            client="litellm",
            families=((r"gemini-(2\.5|[3-9])", _SUMMARY),),
        ),
        HostedSpec(
            "deepseek",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            Capabilities(completions=False, reasoning_field=True, n_samples=False, assistant_prefill=False),
        ),
        HostedSpec(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            Capabilities(completions=False, reasoning_field=True, n_samples=False, assistant_prefill=False),
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


def hosted_provider(spec: HostedSpec, model_name: str, model_id: str, endpoint: Endpoint, api_key: str) -> Any:
    """The provider object for a hosted model (SDK-based ones imported only when used)."""
    capabilities = spec.capabilities_for(model_id)
    if spec.client == "openai-sdk":
        from cotbridge.providers.openai_responses import OpenAIResponsesProvider

        return OpenAIResponsesProvider(spec.name, model_name, model_id, endpoint, api_key, capabilities)
    if spec.client == "litellm":
        from cotbridge.providers.litellm_hosted import LiteLLMProvider, import_litellm

        import_litellm()  # a missing extra is reported now, not at the first request
        return LiteLLMProvider(spec.name, model_name, model_id, endpoint, api_key, capabilities)
    return HostedProvider(spec, model_name, model_id, endpoint)


class HostedProvider(OpenAICompatProvider):
    """A hosted OpenAI-format API: the generic dialect plus the provider's own request fields."""

    def __init__(self, spec: HostedSpec, model_name: str, served_model: str, endpoint: Endpoint) -> None:
        super().__init__(model_name, served_model, endpoint)
        self.spec = spec
        self.name = spec.name
        self.capabilities = spec.capabilities_for(served_model)

    def chat(self, body: dict[str, Any]) -> Any:
        if self.spec.chat_extra:
            body = {**self.spec.chat_extra, **body}
        return super().chat(body)
