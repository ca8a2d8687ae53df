"""Every provider cotbridge speaks to, in one table: how to build it, where it is by default, which variable holds
its key, what its models can do, its default thinking format and where its prices are in the bundled price map.

What the hosted APIs expose differs (their API references): DeepSeek returns the reasoning of `deepseek-reasoner`
in `reasoning_content`; OpenRouter returns a unified `reasoning` field when asked with its `reasoning` parameter;
Together and Fireworks serve open reasoning models with raw `<think>` text and echo log-probs on their completions
endpoints. These four speak the OpenAI chat format over the aiohttp transport. OpenAI's reasoning models
(o-series, GPT-5) return only a summary of their reasoning, through the Responses API (openai SDK); Anthropic's
Claude 4 models return summarized thinking (Claude 3.7 the full thinking) and Gemini 2.5+ thought summaries,
through litellm. None of them renders a chat template or takes token ids for cotbridge, so a foreign CoT reaches
every hosted model in `context` mode, and only a raw CoT can be transferred from one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cotbridge.errors import ConfigError
from cotbridge.providers.base import Capabilities, Provider
from cotbridge.providers.local import LocalProvider
from cotbridge.providers.openai_compat import LlamaCppProvider, OpenAICompatProvider, VLLMProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class ProviderArgs:
    """What a provider factory gets: the model's names, where it is, its key, and the bridge's endpoint maker
    (endpoints are shared by the models on one server and owned by the bridge)."""

    model_name: str
    model_id: str
    base_url: str
    api_key: str | None
    endpoint_for: Callable[[str], Endpoint]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider: `make` builds the provider object for a model of it.

    key_env: the variable that must hold the key (hosted APIs; None where no key is needed). families: (regex on
    the model id, capabilities) pairs; the first match overrides `capabilities`. price_map: (key prefix, litellm
    provider) of its models in the price map bundled with litellm. chat_extra: fields added to each chat request.
    """

    name: str
    make: Callable[[ProviderSpec, ProviderArgs], Provider]
    base_url: str | None = None
    key_env: str | None = None
    capabilities: Capabilities | None = None  # None: what the provider's protocol class declares
    families: tuple[tuple[str, Capabilities], ...] = ()
    default_format: str = "none"
    price_map: tuple[str, str] | None = None
    chat_extra: dict[str, Any] = field(default_factory=dict)
    needs_url: bool = True

    @property
    def hosted(self) -> bool:
        return self.key_env is not None

    def capabilities_for(self, model_id: str) -> Capabilities | None:
        for pattern, capabilities in self.families:
            if re.search(pattern, model_id.lower()):
                return capabilities
        return self.capabilities

    def env_var(self, what: str) -> str:
        """The variable that supplies this provider's base URL or key, e.g. COTBRIDGE_VLLM_BASE_URL."""
        return f"COTBRIDGE_{self.name.upper().replace('-', '_')}_{what}"


def _http(cls: type[OpenAICompatProvider]) -> Callable[[ProviderSpec, ProviderArgs], Provider]:
    def make(spec: ProviderSpec, args: ProviderArgs) -> Provider:
        return cls(
            args.model_name,
            args.model_id,
            args.endpoint_for(args.base_url),
            name=spec.name,
            capabilities=spec.capabilities_for(args.model_id),
            chat_extra=spec.chat_extra,
        )

    return make


def _local(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    return LocalProvider(args.model_name, args.model_id, args.endpoint_for)


def _openai_sdk(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    from cotbridge.providers.openai_responses import OpenAIResponsesProvider  # lazy: the SDK's import is slow

    return OpenAIResponsesProvider(spec.name, *_sdk_args(spec, args))


def _litellm(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    from cotbridge.providers.litellm_hosted import LiteLLMProvider, import_litellm

    import_litellm()  # a missing extra is reported now, not at the first request
    return LiteLLMProvider(spec.name, *_sdk_args(spec, args))


def _sdk_args(spec: ProviderSpec, args: ProviderArgs) -> tuple[str, str, Endpoint, str, Capabilities]:
    capabilities = spec.capabilities_for(args.model_id)
    assert args.api_key is not None and capabilities is not None  # hosted specs have a key and capabilities
    return args.model_name, args.model_id, args.endpoint_for(args.base_url), args.api_key, capabilities


# A hosted chat model reached through an SDK: chat only, one sample per request, no scoring or token ids.
_SDK_CHAT = Capabilities(
    completions=False, logprobs=False, reasoning_field=True, n_samples=False, assistant_prefill=False
)
_SUMMARY = replace(_SDK_CHAT, reasoning_visibility="summary")
_NO_REASONING = replace(_SDK_CHAT, reasoning_field=False, reasoning_visibility="none")
_HOSTED_CHAT = Capabilities(completions=False, reasoning_field=True, n_samples=False, assistant_prefill=False)

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in [
        ProviderSpec("vllm", _http(VLLMProvider), "http://127.0.0.1:8000/v1"),
        ProviderSpec("llamacpp", _http(LlamaCppProvider), "http://127.0.0.1:8080/v1"),
        ProviderSpec("openai-compatible", _http(OpenAICompatProvider)),
        ProviderSpec("local", _local, needs_url=False),
        ProviderSpec(
            "openai",
            _openai_sdk,
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            replace(_NO_REASONING, logprobs=True),
            families=((r"^(o\d|gpt-5|codex)", _SUMMARY),),
            default_format="reasoning-field",
            price_map=("", "openai"),
        ),
        ProviderSpec(
            "anthropic",
            _litellm,
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            _NO_REASONING,
            families=((r"claude-3-7", _SDK_CHAT), (r"claude-(opus|sonnet|haiku)-4|claude-4", _SUMMARY)),
            default_format="reasoning-field",
            price_map=("", "anthropic"),
        ),
        ProviderSpec(
            "gemini",
            _litellm,
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            _NO_REASONING,
            families=((r"gemini-(2\.5|[3-9])", _SUMMARY),),
            default_format="reasoning-field",
            price_map=("gemini/", "gemini"),
        ),
        ProviderSpec(
            "deepseek",
            _http(OpenAICompatProvider),
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            _HOSTED_CHAT,
            default_format="reasoning-field",
            price_map=("deepseek/", "deepseek"),
        ),
        ProviderSpec(
            "openrouter",
            _http(OpenAICompatProvider),
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            _HOSTED_CHAT,
            default_format="reasoning-field",
            price_map=("openrouter/", "openrouter"),
            chat_extra={"reasoning": {"enabled": True}},
        ),
        ProviderSpec(
            "together",
            _http(OpenAICompatProvider),
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            Capabilities(prompt_scoring="prompt-logprobs"),
            price_map=("together_ai/", "together_ai"),
        ),
        ProviderSpec(
            "fireworks",
            _http(OpenAICompatProvider),
            "https://api.fireworks.ai/inference/v1",
            "FIREWORKS_API_KEY",
            Capabilities(prompt_scoring="prompt-logprobs"),
            price_map=("fireworks_ai/", "fireworks_ai"),
        ),
    ]
}


def provider_spec(model: str) -> tuple[ProviderSpec, str]:
    """(the provider's spec, the model id) of a `provider/model-id` string, or a ConfigError saying what is wrong."""
    provider_name, sep, model_id = model.partition("/")
    if not sep or not model_id:
        raise ConfigError(
            f"model {model!r} needs the form provider/model-id, e.g. vllm/Qwen/QwQ-32B or local/smollm2-135m"
        )
    spec = PROVIDERS.get(provider_name)
    if spec is None:
        raise ConfigError(f"unknown provider {provider_name!r} in {model!r}; known providers: {', '.join(PROVIDERS)}")
    return spec, model_id
