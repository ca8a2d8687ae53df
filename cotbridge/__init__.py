"""cotbridge: send prompts and chains of thought to many models, cache every response, compare the answers.

The public API, layer by layer: the records, options and errors; the client (`Bridge`, `Model`); the CoT science
(`explain`, `answer`, `build_ensemble`, `remove_answer`, `split_sentences`); studies (`StudyConfig`, `run_study`,
`ResultsDB`); and reports (`build_report`). Everything else is internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cotbridge.analysis import Report, build_report
    from cotbridge.client import Bridge, Model
    from cotbridge.cot import (
        EnsembleEnd,
        EnsembleTrace,
        answer,
        build_ensemble,
        explain,
        explain_samples,
        remove_answer,
        remove_answer_by_rule,
        split_sentences,
    )
    from cotbridge.datasets import load_dataset
    from cotbridge.errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        BudgetExceeded,
        ConfigError,
        CotbridgeError,
        MalformedResponseError,
        ProviderError,
        UnsupportedOperation,
    )
    from cotbridge.options import Decoding, EnsembleOptions, ModelOptions, Price, RetryPolicy
    from cotbridge.providers import Capabilities
    from cotbridge.records import (
        Answer,
        BridgeStats,
        Completion,
        Condition,
        ContinuationScore,
        Explanation,
        Message,
        Problem,
        RemovalReport,
        Score,
        TokenLogprob,
        Usage,
        Variant,
    )
    from cotbridge.study import ResultsDB, StudyConfig, load_study, parse_study, run_study

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Answer",
    "Bridge",
    "BridgeStats",
    "BudgetExceeded",
    "Capabilities",
    "Completion",
    "Condition",
    "ConfigError",
    "ContinuationScore",
    "CotbridgeError",
    "Decoding",
    "EnsembleEnd",
    "EnsembleOptions",
    "EnsembleTrace",
    "Explanation",
    "MalformedResponseError",
    "Message",
    "Model",
    "ModelOptions",
    "Price",
    "Problem",
    "ProviderError",
    "RemovalReport",
    "Report",
    "ResultsDB",
    "RetryPolicy",
    "Score",
    "StudyConfig",
    "TokenLogprob",
    "UnsupportedOperation",
    "Usage",
    "Variant",
    "__version__",
    "answer",
    "build_ensemble",
    "build_report",
    "explain",
    "explain_samples",
    "load_dataset",
    "load_study",
    "parse_study",
    "remove_answer",
    "remove_answer_by_rule",
    "run_study",
    "split_sentences",
]

# Public name -> its module. Loaded on first use, so `from cotbridge import Bridge` brings in the client and not the
# study and analysis layers: a script that only sends requests keeps a smaller heap for the garbage collector to
# walk (measured: about a tenth of the client's throughput at high concurrency).
_EXPORTS = {
    "APIConnectionError": "cotbridge.errors",
    "APIStatusError": "cotbridge.errors",
    "APITimeoutError": "cotbridge.errors",
    "Answer": "cotbridge.records",
    "Bridge": "cotbridge.client",
    "BridgeStats": "cotbridge.records",
    "BudgetExceeded": "cotbridge.errors",
    "Capabilities": "cotbridge.providers",
    "Completion": "cotbridge.records",
    "Condition": "cotbridge.records",
    "ConfigError": "cotbridge.errors",
    "ContinuationScore": "cotbridge.records",
    "CotbridgeError": "cotbridge.errors",
    "Decoding": "cotbridge.options",
    "EnsembleEnd": "cotbridge.cot",
    "EnsembleOptions": "cotbridge.options",
    "EnsembleTrace": "cotbridge.cot",
    "Explanation": "cotbridge.records",
    "MalformedResponseError": "cotbridge.errors",
    "Message": "cotbridge.records",
    "Model": "cotbridge.client",
    "ModelOptions": "cotbridge.options",
    "Price": "cotbridge.options",
    "Problem": "cotbridge.records",
    "ProviderError": "cotbridge.errors",
    "RemovalReport": "cotbridge.records",
    "Report": "cotbridge.analysis",
    "ResultsDB": "cotbridge.study",
    "RetryPolicy": "cotbridge.options",
    "Score": "cotbridge.records",
    "StudyConfig": "cotbridge.study",
    "TokenLogprob": "cotbridge.records",
    "UnsupportedOperation": "cotbridge.errors",
    "Usage": "cotbridge.records",
    "Variant": "cotbridge.records",
    "answer": "cotbridge.cot",
    "build_ensemble": "cotbridge.cot",
    "build_report": "cotbridge.analysis",
    "explain": "cotbridge.cot",
    "explain_samples": "cotbridge.cot",
    "load_dataset": "cotbridge.datasets",
    "load_study": "cotbridge.study",
    "parse_study": "cotbridge.study",
    "remove_answer": "cotbridge.cot",
    "remove_answer_by_rule": "cotbridge.cot",
    "run_study": "cotbridge.study",
    "split_sentences": "cotbridge.cot",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cotbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
