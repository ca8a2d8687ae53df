"""cotbridge: send prompts and chains of thought to many models, cache every response, compare the answers.

The public API, layer by layer: the records, options and errors; the client (`Bridge`, `Model`); the CoT science
(`explain`, `answer`, `build_ensemble`, `remove_answer`, `split_sentences`); studies (`StudyConfig`, `run_study`,
`ResultsDB`); and reports (`build_report`). Everything else is internal.
"""

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
