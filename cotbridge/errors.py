"""The errors cotbridge raises: a small hierarchy users can catch.

Every message names what went wrong and where (model, endpoint, status) and, where there is one, the fix.
No message ever contains an API key or an auth header.
"""

from __future__ import annotations


class CotbridgeError(Exception):
    """Base class of every error cotbridge raises on purpose."""


class ConfigError(CotbridgeError, ValueError):
    """Bad input from the user: a model string, an option, a file. The message says how to fix it."""


class UnsupportedOperation(CotbridgeError):
    """The model's server cannot do what was asked (for example, score a continuation)."""


class ProviderError(CotbridgeError):
    """A request to a model's server failed for good (after any retries)."""

    def __init__(
        self,
        detail: str,
        *,
        model: str,
        endpoint: str,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.detail = detail
        self.model = model
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts
        where = f"{model} at {endpoint}"
        status_part = f"HTTP {status}: " if status is not None else ""
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        super().__init__(f"{where}: {status_part}{detail}{tries}")


class APIStatusError(ProviderError):
    """The server answered with an error status."""


class APIConnectionError(ProviderError):
    """The server could not be reached or dropped the connection."""


class APITimeoutError(ProviderError):
    """The server did not answer within the request timeout."""


class MalformedResponseError(ProviderError):
    """The server answered 2xx with a body that is not the JSON it should be."""


class BudgetExceeded(CotbridgeError):
    """A request was not sent because it could take the study past its budget; finished work is kept."""
