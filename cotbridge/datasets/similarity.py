"""Similarity of a free-text answer to reference texts: BERTScore when it can run offline, else token F1.

`default_similarity()` picks BERTScore only when the `bert_score` package is installed and its model is already
in the local Hugging Face cache; it never downloads anything. Otherwise it returns `TokenF1`, the SQuAD-style
token-overlap F1 (lower case, punctuation and articles removed), which needs nothing.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from cotbridge.datasets.answers import normalize_text

# Layer whose embeddings BERTScore uses, per model (bert_score's own recommendations).
_BERTSCORE_LAYERS = {"roberta-large": 17, "microsoft/deberta-xlarge-mnli": 40, "bert-base-uncased": 9}


class Similarity(Protocol):
    """Scores a candidate against references; `name` is what `Score.metric` records."""

    @property
    def name(self) -> str:
        """The metric's name, e.g. "token-f1"."""
        ...

    def best(self, candidate: str, references: list[str]) -> float:
        """The highest similarity of `candidate` to any of `references` (0.0 when there are none)."""
        ...


def token_f1(candidate: str, reference: str) -> float:
    """F1 of the normalized token multisets of two texts (1.0 when both are empty after normalization)."""
    cand, ref = normalize_text(candidate).split(), normalize_text(reference).split()
    if not cand or not ref:
        return float(cand == ref)
    overlap = sum((Counter(cand) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(cand), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class TokenF1:
    """Token-overlap F1 (`token_f1`); the fallback that always works."""

    name: str = "token-f1"

    def best(self, candidate: str, references: list[str]) -> float:
        return max((token_f1(candidate, ref) for ref in references), default=0.0)


@dataclass
class BertScore:
    """BERTScore F1, rescaled with bert_score's baseline so that unrelated texts score near 0 and 0.5 is a
    meaningful threshold. The model is loaded from the local cache on first use, never downloaded."""

    model_type: str = "roberta-large"
    lang: str = "en"
    name: str = "bertscore"
    _scorer: Any = field(default=None, init=False, repr=False)

    def _load(self) -> Any:
        import bert_score  # optional dependency: only imported once BertScore is actually used

        local_dir = cached_model_dir(self.model_type)
        if local_dir is None:
            raise RuntimeError(f"the BERTScore model {self.model_type!r} is not in the local Hugging Face cache")
        layers = _BERTSCORE_LAYERS.get(self.model_type) or bert_score.utils.model2layers[self.model_type]
        baseline = Path(bert_score.__file__).parent / "rescale_baseline" / self.lang / f"{self.model_type}.tsv"
        # A local path as model_type keeps transformers off the network; layers and baseline are then explicit.
        return bert_score.BERTScorer(
            model_type=str(local_dir),
            num_layers=layers,
            lang=self.lang,
            rescale_with_baseline=baseline.exists(),
            baseline_path=str(baseline) if baseline.exists() else None,
        )

    def best(self, candidate: str, references: list[str]) -> float:
        if not references:
            return 0.0
        if self._scorer is None:
            self._scorer = self._load()
        _, _, f1 = self._scorer.score([candidate] * len(references), references, verbose=False)
        return float(f1.max())


def cached_model_dir(model_type: str) -> Path | None:
    """The local snapshot folder of a Hugging Face model, or None when it is not cached (never downloads)."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_type, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError and friends: not cached, or the cache is unusable
        return None


@cache
def bertscore_available(model_type: str = "roberta-large") -> bool:
    """Whether `bert_score` is installed and `model_type` is in the local cache."""
    return importlib.util.find_spec("bert_score") is not None and cached_model_dir(model_type) is not None


def default_similarity() -> Similarity:
    """BERTScore when it can run offline (`bertscore_available`), else token F1."""
    return BertScore() if bertscore_available() else TokenF1()
