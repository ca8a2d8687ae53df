"""Providers: one module per wire protocol. Nothing here knows about studies."""

from cotbridge.providers.base import Capabilities, Provider
from cotbridge.providers.local import LOCAL_MODELS, LocalProvider
from cotbridge.providers.openai_compat import LlamaCppProvider, OpenAICompatProvider, VLLMProvider
from cotbridge.providers.transport import Endpoint, RetryPolicy

__all__ = [
    "LOCAL_MODELS",
    "Capabilities",
    "Endpoint",
    "LlamaCppProvider",
    "LocalProvider",
    "OpenAICompatProvider",
    "Provider",
    "RetryPolicy",
    "VLLMProvider",
]
