"""The CoTs of one study run, kept under the names results are stored under.

A CoT is found by its variant (full or answer-removed), its kind (greedy, sampled, ensemble), its source (the
`[models]` entry name, or the `[ensembles]` name, never the model string: two entries may run the same model on
two servers), its problem and its sample index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum

from cotbridge.records import Explanation, Variant
from cotbridge.study.results import ExplanationRow


class CotKind(StrEnum):
    """How a CoT was made: a model's greedy CoT, one of its sampled CoTs, or a sentence-level ensemble's."""

    GREEDY = "greedy"
    SAMPLED = "sampled"
    ENSEMBLE = "ensemble"


@dataclass(frozen=True, slots=True)
class StudyCot:
    """One CoT of a study with what it is stored under."""

    variant: Variant
    kind: CotKind
    source: str  # the [models] or [ensembles] name
    explanation: Explanation

    def row(self, study: str, trace: str | None = None) -> ExplanationRow:
        """The row it is stored as; `trace` is an ensemble's trace as JSON."""
        e = self.explanation
        return ExplanationRow(
            study=study,
            problem_id=e.problem_id,
            source=self.source,
            kind=self.kind,
            sample_index=e.sample_index,
            variant=self.variant,
            cot=e.cot,
            final_text=e.final_text,
            answer=e.answer.parsed if e.answer else None,
            normalized=e.answer.normalized if e.answer else None,
            correct=e.answer.correct if e.answer else None,
            truncated=e.truncated,
            redacted=e.redacted,
            prompt_text=e.prompt_text,
            removal=json.dumps(asdict(e.removal)) if e.removal else None,
            trace=trace,
            prompt_tokens=e.usage.prompt_tokens,
            completion_tokens=e.usage.completion_tokens,
            reasoning_tokens=e.usage.reasoning_tokens,
            live_prompt_tokens=e.usage.live_prompt_tokens,
            live_completion_tokens=e.usage.live_completion_tokens,
        )


class ExplanationSet:
    """Every CoT of a run, by (variant, kind, source, problem id) and then sample index."""

    def __init__(self) -> None:
        self._cots: dict[tuple[Variant, CotKind, str, str], dict[int, StudyCot]] = {}
        self._failed: dict[tuple[Variant, CotKind, str, str], str] = {}
        self._of_problem: dict[tuple[Variant, str], list[dict[int, StudyCot]]] = {}

    def __len__(self) -> int:
        return sum(len(samples) for samples in self._cots.values())

    def add(self, cot: StudyCot) -> None:
        """Keeps a CoT, replacing one with the same key."""
        key = (cot.variant, cot.kind, cot.source, cot.explanation.problem_id)
        samples = self._cots.get(key)
        if samples is None:
            samples = self._cots[key] = {}
            self._of_problem.setdefault((cot.variant, cot.explanation.problem_id), []).append(samples)
        samples[cot.explanation.sample_index] = cot

    def fail(self, variants: list[Variant], kind: CotKind, source: str, problem_id: str, why: str) -> None:
        """Records that a source's CoTs for a problem could not be made (in these variants), and why."""
        for variant in variants:
            self._failed.setdefault((variant, kind, source, problem_id), why)

    def failure(self, variant: Variant, kind: CotKind, source: str, problem_id: str) -> str | None:
        """Why a source's CoTs for a problem are missing, or None when nothing failed."""
        return self._failed.get((variant, kind, source, problem_id))

    def get(
        self, variant: Variant, kind: CotKind, source: str, problem_id: str, sample_index: int = 0
    ) -> Explanation | None:
        """One CoT, or None when there is none (not asked for, or its generation failed)."""
        cot = self._cots.get((variant, kind, source, problem_id), {}).get(sample_index)
        return cot.explanation if cot else None

    def of_source(self, variant: Variant, kind: CotKind, source: str, problem_id: str) -> list[Explanation]:
        """A source's CoTs of one kind for one problem, in sample order."""
        samples = self._cots.get((variant, kind, source, problem_id), {})
        return [samples[index].explanation for index in sorted(samples)]

    def of_problem(self, variant: Variant, problem_id: str) -> list[StudyCot]:
        """Every CoT of one variant for one problem."""
        return [cot for samples in self._of_problem.get((variant, problem_id), []) for cot in samples.values()]

    def of_variant(self, variant: Variant) -> Iterator[StudyCot]:
        """Every CoT of one variant."""
        for (cot_variant, _, _, _), samples in self._cots.items():
            if cot_variant == variant:
                yield from samples.values()
