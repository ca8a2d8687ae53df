"""cotbridge: send prompts and chains of thought to many models, cache every response, compare the answers.

Public API: `Bridge`, `Model`, the result records and the errors. Everything else is internal.
"""

from cotbridge.bridge import Bridge
from cotbridge.datasets import Problem, Score, load_dataset
from cotbridge.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    CotbridgeError,
    MalformedResponseError,
    ProviderError,
    UnsupportedOperation,
)
from cotbridge.model import Model
from cotbridge.providers.base import Capabilities
from cotbridge.providers.transport import RetryPolicy
from cotbridge.reasoning import Answer, Explanation, RemovalReport
from cotbridge.types import BridgeStats, Completion, ContinuationScore, Message, TokenLogprob, Usage

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Explanation",
    "Problem",
    "RemovalReport",
    "Score",
    "load_dataset",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Bridge",
    "BridgeStats",
    "Capabilities",
    "Completion",
    "ConfigError",
    "ContinuationScore",
    "CotbridgeError",
    "MalformedResponseError",
    "Message",
    "Model",
    "ProviderError",
    "RetryPolicy",
    "TokenLogprob",
    "UnsupportedOperation",
    "Usage",
    "__version__",
]
