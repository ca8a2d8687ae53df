"""Providers: one module per wire protocol, the provider contract and the registry. Nothing here knows about
chains of thought or studies."""

from cotbridge.providers.base import BaseProvider, Capabilities, Provider
from cotbridge.providers.registry import PROVIDERS, ProviderArgs, ProviderSpec, provider_spec
from cotbridge.providers.transport import Endpoint

__all__ = [
    "PROVIDERS",
    "BaseProvider",
    "Capabilities",
    "Endpoint",
    "Provider",
    "ProviderArgs",
    "ProviderSpec",
    "provider_spec",
]
