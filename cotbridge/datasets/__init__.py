"""Problem sets: MedCalc-Bench, Instruction Induction, your own JSON Lines, and built-in sets.

`load_dataset(spec, sample=None, seed=None)` returns `Problem`s; `problem.check(text)` scores a model's own
generated text and returns a `Score`. Answer rules live in `cotbridge.datasets.answers`.
"""

from __future__ import annotations

from cotbridge.datasets.loader import SPEC_FORMS, load_dataset
from cotbridge.records import AnswerChecker, Problem, Score

__all__ = ["SPEC_FORMS", "AnswerChecker", "Problem", "Score", "load_dataset"]
