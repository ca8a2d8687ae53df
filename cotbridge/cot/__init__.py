"""The CoT science on top of the client: explain and answer with a CoT given (transfer), sentence-level ensembles,
answer removal and sentence splitting. Functions and small classes that take Models."""

from cotbridge.cot.answer_removal import remove_answer, remove_answer_by_rule
from cotbridge.cot.ensemble import EnsembleEnd, EnsembleTrace, build_ensemble
from cotbridge.cot.sentences import split_sentences
from cotbridge.cot.transfer import answer, can_prefill, explain, explain_samples, resolve_mode

__all__ = [
    "EnsembleEnd",
    "EnsembleTrace",
    "answer",
    "build_ensemble",
    "can_prefill",
    "explain",
    "explain_samples",
    "remove_answer",
    "remove_answer_by_rule",
    "resolve_mode",
    "split_sentences",
]
