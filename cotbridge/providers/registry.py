"""Every provider cotbridge speaks to, in one table: how to build it, where it is by default, which variable holds
its key, its default thinking format and where its models are in the bundled price map. What its models can do is
data (`capabilities.toml`, resolved by `capability_resolution.py`) and reaches the factory in `ProviderArgs`.

DeepSeek, OpenRouter, Together and Fireworks speak the OpenAI chat format over the aiohttp transport (OpenRouter
with its own reasoning fields in answers); OpenAI's models go through the Responses API (openai SDK), Anthropic's
and Gemini's through litellm. None of them renders a chat template or takes token ids for cotbridge, so a foreign
CoT reaches every hosted model in `context` mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cotbridge.errors import ConfigError
from cotbridge.providers.base import Capabilities, Provider
from cotbridge.providers.local import LocalProvider
from cotbridge.providers.openai_compat import LlamaCppProvider, OpenAICompatProvider, OpenRouterProvider, VLLMProvider
from cotbridge.providers.transport import Endpoint


@dataclass(frozen=True, slots=True)
class ProviderArgs:
    """What a provider factory gets: the model's names, where it is, its key, the bridge's endpoint maker
    (endpoints are shared by the models on one server and owned by the bridge) and its resolved capabilities."""

    model_name: str
    model_id: str
    base_url: str
    api_key: str | None
    endpoint_for: Callable[[str], Endpoint]
    capabilities: Capabilities


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider: `make` builds the provider object for a model of it.

    key_env: the variable that must hold the key (hosted APIs; None where no key is needed). price_map: (key
    prefix, litellm provider) of its models in the map bundled with litellm. chat_extra: fields added to each chat
    request.
    """

    name: str
    make: Callable[[ProviderSpec, ProviderArgs], Provider]
    base_url: str | None = None
    key_env: str | None = None
    default_format: str = "none"
    price_map: tuple[str, str] | None = None
    chat_extra: dict[str, Any] = field(default_factory=dict)
    needs_url: bool = True

    @property
    def hosted(self) -> bool:
        return self.key_env is not None

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
            capabilities=args.capabilities,
            chat_extra=spec.chat_extra,
        )

    return make


def _local(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    return LocalProvider(args.model_name, args.model_id, args.endpoint_for, capabilities=args.capabilities)


def _openai_sdk(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    from cotbridge.providers.openai_responses import OpenAIResponsesProvider  # lazy: the SDK's import is slow

    return OpenAIResponsesProvider(spec.name, *_sdk_args(spec, args))


def _litellm(spec: ProviderSpec, args: ProviderArgs) -> Provider:
    from cotbridge.providers.litellm_hosted import LiteLLMProvider, import_litellm

    import_litellm()  # a missing extra is reported now, not at the first request
    return LiteLLMProvider(spec.name, *_sdk_args(spec, args))


def _sdk_args(spec: ProviderSpec, args: ProviderArgs) -> tuple[str, str, Endpoint, str, Capabilities]:
    assert args.api_key is not None  # hosted specs have a key
    return args.model_name, args.model_id, args.endpoint_for(args.base_url), args.api_key, args.capabilities


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
            default_format="reasoning-field",
            price_map=("", "openai"),
        ),
        ProviderSpec(
            "anthropic",
            _litellm,
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            default_format="reasoning-field",
            price_map=("", "anthropic"),
        ),
        ProviderSpec(
            "gemini",
            _litellm,
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            default_format="reasoning-field",
            price_map=("gemini/", "gemini"),
        ),
        ProviderSpec(
            "deepseek",
            _http(OpenAICompatProvider),
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            default_format="reasoning-field",
            price_map=("deepseek/", "deepseek"),
        ),
        ProviderSpec(
            "openrouter",
            _http(OpenRouterProvider),
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            default_format="reasoning-field",
            price_map=("openrouter/", "openrouter"),
            chat_extra={"reasoning": {"enabled": True}},
        ),
        ProviderSpec(
            "together",
            _http(OpenAICompatProvider),
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            price_map=("together_ai/", "together_ai"),
        ),
        ProviderSpec(
            "fireworks",
            _http(OpenAICompatProvider),
            "https://api.fireworks.ai/inference/v1",
            "FIREWORKS_API_KEY",
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
