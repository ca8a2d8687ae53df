"""Agreement and accuracy metrics for cross-model CoT studies: pure functions, no I/O.

Everything here takes data the caller already loaded and returns small frozen result records; nothing reads
files, touches the network or prints. "The paper" is Pal, Bau, Singh, "Do explanations generalize across large
reasoning models?" (arXiv 2601.11517); its conditions are A empty (no CoT), B1 default (the evaluator's own greedy
CoT), B2 sampled (its own sampled CoT), C transfer (another model's CoT) and D ensemble.

- `paper_consistency`: the paper's pairwise consistency, the quirks of its reference code included. Use it only to
  reproduce the paper's numbers.
- `strict_consistency`: the project's metric: normalized answers (numbers compared as numbers), one invalid-answer
  policy for every condition, coverage, and the consistent-correct / consistent-wrong / inconsistent breakdown
  that the paper's metric mixes together (it counts two correct answers as agreeing, whatever their values).
- accuracy, the generator x evaluator transfer matrix, source-to-target agreement, self-consistency,
  transitions versus the empty condition, Fleiss' kappa, bootstrap confidence intervals over problems, and
  correlations (Pearson, Spearman, Kendall tau-b; no scipy) with the human ratings of the paper's user study.

Data model: one evaluator's answers are a mapping problem id -> `AnswerRow`; a condition is a mapping evaluator
name -> that mapping (`ConditionData`). Rows are always aligned by problem id, never by position.

One invalid-answer policy for every project metric: a row is *valid* when it did not crash (`answer` is not None)
and its answer parsed (`normalized` is not None). Invalid rows count as wrong for accuracy and are excluded (and
counted against coverage) from every agreement metric. Only `paper_consistency` departs from this, on purpose.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "LIKERT_CRITERIA",
    "PAPER_ERROR_MARKERS",
    "AccuracyResult",
    "AgreementResult",
    "AnswerRow",
    "BootstrapResult",
    "ConditionData",
    "ConsistencyResult",
    "CorrelationResult",
    "HumanCorrelationResult",
    "KappaResult",
    "PairConsistency",
    "PairedBootstrapResult",
    "RatingRow",
    "SelfConsistencyResult",
    "TransferMatrix",
    "TransitionResult",
    "accuracy",
    "bootstrap_ci",
    "condition_fleiss_kappa",
    "consistency_ci",
    "evaluator_accuracy",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "has_paper_error_marker",
    "human_rating_correlation",
    "kendall_tau_b",
    "mean_ratings",
    "paired_bootstrap",
    "paper_consistency",
    "pearson",
    "rows_by_id",
    "self_consistency",
    "source_to_target_agreement",
    "spearman",
    "strict_consistency",
    "transfer_matrix",
    "transitions",
]

# The substrings that make the paper's consistency skip a problem (an answer containing one is an error message).
# Deliberately exactly these four, case-sensitive, as the paper's reference code matched them.
PAPER_ERROR_MARKERS: tuple[str, ...] = ("not defined", "N/A", "does not match", "are not permitted")

# The user study's three 1-5 Likert criteria. "best-overall" is a per-item rank stored as 6 - rank (values 2-5,
# higher is better), not a rating, so it is left out of rating means unless asked for by name.
LIKERT_CRITERIA: tuple[str, ...] = ("Clarity of Steps", "Ease of Following", "Confidence")

ConsistencyMetric = Literal["paper", "strict"]


# --------------------------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------------------------


class _ScoreLike(Protocol):
    # Read-only members, so frozen dataclasses such as `cotbridge.records.Score` match.
    @property
    def parsed(self) -> str | None: ...
    @property
    def normalized(self) -> str | None: ...
    @property
    def correct(self) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """One evaluator's answer to one problem.

    problem_id: the problem's id (alignment is always by this id, never by position).
    answer: the answer string as extracted; None when the row crashed or is missing its answer.
    normalized: a canonical string of the answer's value ("5" for "5.0"); None when the answer is unparseable.
    correct: True / False, or None when the answer is unparseable or invalid.
    """

    problem_id: str
    answer: str | None
    normalized: str | None = None
    correct: bool | None = None

    def __post_init__(self) -> None:
        # A crashed row has no answer, so it cannot have a value; catching this early keeps "valid" meaningful.
        if self.answer is None and self.normalized is not None:
            raise ValueError(f"problem {self.problem_id!r}: a crashed row (answer None) cannot have a normalized value")

    @classmethod
    def from_score(cls, problem_id: str, score: _ScoreLike | None) -> AnswerRow:
        """Build a row from a `cotbridge.records.Score`-like object; None means the row crashed."""
        if score is None:
            return cls(problem_id, None, None, None)
        return cls(problem_id, score.parsed, score.normalized, score.correct)

    @property
    def crashed(self) -> bool:
        """True when there is no answer at all (a crashed or missing generation)."""
        return self.answer is None

    @property
    def valid(self) -> bool:
        """True when the row did not crash and its answer parsed (the project's single invalid-answer policy)."""
        return self.answer is not None and self.normalized is not None

    @property
    def is_correct(self) -> bool:
        """Correct under the project's policy: valid and marked correct (invalid counts as wrong)."""
        return self.valid and self.correct is True

    @property
    def state(self) -> Literal["correct", "wrong", "invalid"]:
        """`invalid` when not valid, else `correct` when marked correct, else `wrong`."""
        if not self.valid:
            return "invalid"
        return "correct" if self.correct is True else "wrong"


# evaluator name -> problem id -> row
ConditionData = Mapping[str, Mapping[str, AnswerRow]]


def rows_by_id(rows: Iterable[AnswerRow]) -> dict[str, AnswerRow]:
    """Index rows by problem id (the shape every metric takes); raises ValueError on a duplicate id."""
    out: dict[str, AnswerRow] = {}
    for row in rows:
        if row.problem_id in out:
            raise ValueError(f"duplicate problem id {row.problem_id!r}")
        out[row.problem_id] = row
    return out


def _check_rows(name: str, rows: Mapping[str, AnswerRow]) -> None:
    # A key that disagrees with its row's id means the caller indexed the wrong rows: fail loudly, since the
    # whole point of aligning by id is to never compare answers of different problems.
    for pid, row in rows.items():
        if row.problem_id != pid:
            raise ValueError(f"{name}: key {pid!r} holds the row of problem {row.problem_id!r}")


def has_paper_error_marker(answer: str | None) -> bool:
    """True when the answer contains one of `PAPER_ERROR_MARKERS` (a crashed row, read as "", never does)."""
    text = "" if answer is None else answer
    return any(marker in text for marker in PAPER_ERROR_MARKERS)


# --------------------------------------------------------------------------------------------------------------
# Pairwise consistency (paper and strict)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairConsistency:
    """Consistency of one unordered evaluator pair (a, b) over the problems both answered.

    total: problems present for both evaluators; compared: those not excluded (paper: not skipped for an error
    marker; strict: both answers valid); consistent = consistent_correct + consistent_wrong, where
    consistent_correct means both answers are correct. value = consistent / compared (nan when nothing was
    compared); coverage = compared / total. problems: the ids that were compared, sorted.
    """

    a: str
    b: str
    total: int
    compared: int
    consistent: int
    consistent_correct: int
    consistent_wrong: int
    problems: tuple[str, ...]

    @property
    def value(self) -> float:
        """C_ab = consistent / compared (nan when nothing was compared)."""
        return self.consistent / self.compared if self.compared else math.nan

    @property
    def inconsistent(self) -> int:
        """Compared problems on which the pair did not agree."""
        return self.compared - self.consistent

    @property
    def excluded(self) -> int:
        """Problems present for both but not compared (error markers or invalid answers)."""
        return self.total - self.compared

    @property
    def coverage(self) -> float:
        """compared / total (nan when the pair shares no problem)."""
        return self.compared / self.total if self.total else math.nan


@dataclass(frozen=True, slots=True)
class ConsistencyResult:
    """Consistency of one condition over all unordered evaluator pairs.

    mean, std (population, ddof=0, as the paper reports) and std_sample (ddof=1) are over the pairs' C_ab values;
    a pair that compared no problem has no value and is left out (n_pairs counts the pairs that have one).
    consistent_correct / consistent_wrong / inconsistent are per-pair fractions of compared problems, averaged
    over the same pairs. coverage pools all pairs: sum(compared) / sum(total). problems: every problem id compared
    by at least one pair, sorted.
    """

    metric: ConsistencyMetric
    mean: float
    std: float
    std_sample: float
    n_pairs: int
    pairs: tuple[PairConsistency, ...]
    coverage: float
    consistent_correct: float
    consistent_wrong: float
    inconsistent: float
    problems: tuple[str, ...]

    def pair(self, a: str, b: str) -> PairConsistency:
        """The pair (a, b) in either order; KeyError when absent."""
        for p in self.pairs:
            if (p.a, p.b) in ((a, b), (b, a)):
                return p
        raise KeyError((a, b))


@dataclass(frozen=True)
class _PairTables:
    """Per-pair x per-problem 0/1 tables over one problem universe (what the bootstrap resamples)."""

    pairs: list[tuple[str, str]]
    problem_ids: list[str]
    present: npt.NDArray[np.float64]  # [P, N] problem present for both evaluators
    compared: npt.NDArray[np.float64]  # [P, N] not excluded
    consistent: npt.NDArray[np.float64]  # [P, N] compared and consistent
    consistent_correct: npt.NDArray[np.float64]  # [P, N] consistent and both correct


def _paper_judge(x: AnswerRow, y: AnswerRow) -> tuple[bool, bool, bool]:
    """(compared, consistent, both_correct) under the paper's rule, crash quirk included."""
    # Reference quirk: a crashed row's missing answer is read as "", so two crashed rows are "identical".
    ax = "" if x.answer is None else x.answer
    ay = "" if y.answer is None else y.answer
    if has_paper_error_marker(ax) or has_paper_error_marker(ay):
        return False, False, False
    # A crashed row is never correct, whatever its label says.
    both_correct = (x.answer is not None and x.correct is True) and (y.answer is not None and y.correct is True)
    return True, ax == ay or both_correct, both_correct


def _strict_judge(x: AnswerRow, y: AnswerRow) -> tuple[bool, bool, bool]:
    """(compared, consistent, both_correct) under the strict rule: valid answers, equal normalized values."""
    if not (x.valid and y.valid):
        return False, False, False
    consistent = x.normalized == y.normalized
    return True, consistent, consistent and x.correct is True and y.correct is True


def _check_condition(condition: ConditionData) -> list[str]:
    evaluators = list(condition)
    if len(evaluators) < 2:
        raise ValueError(f"consistency needs at least two evaluators, got {len(evaluators)}")
    for name in evaluators:
        _check_rows(name, condition[name])
    return evaluators


def _pair_tables(
    condition: ConditionData, metric: ConsistencyMetric, universe: Sequence[str] | None = None
) -> _PairTables:
    if metric not in ("paper", "strict"):
        raise ValueError(f"metric must be 'paper' or 'strict', got {metric!r}")
    evaluators = _check_condition(condition)
    pairs = list(itertools.combinations(evaluators, 2))
    if universe is None:
        universe = sorted(set().union(*(set(rows) for rows in condition.values())))
    col = {pid: j for j, pid in enumerate(universe)}
    present, usable, same, right = _judged_columns(condition, evaluators, col, metric)
    # Every pair at once: the judges of `_paper_judge` / `_strict_judge`, on evaluator x problem columns.
    a = np.array([evaluators.index(x) for x, _ in pairs], dtype=np.intp)
    b = np.array([evaluators.index(y) for _, y in pairs], dtype=np.intp)
    both_present = present[a] & present[b]
    compared = both_present & usable[a] & usable[b]
    both_right = right[a] & right[b]
    if metric == "paper":
        consistent = compared & ((same[a] == same[b]) | both_right)
    else:
        consistent = compared & (same[a] == same[b])
    correct = consistent & both_right
    return _PairTables(
        pairs,
        list(universe),
        both_present.astype(float),
        compared.astype(float),
        consistent.astype(float),
        correct.astype(float),
    )


def _judged_columns(
    condition: ConditionData, evaluators: list[str], col: Mapping[str, int], metric: ConsistencyMetric
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """[E, N] per evaluator and problem: present; usable (paper: no error marker; strict: valid); what the judge
    compares, as a code per distinct string (paper: the answer, a crashed row's as ""; strict: the normalized
    value); right (paper: answered and correct; strict: correct). A row of a problem outside `col` is left out."""
    shape = (len(evaluators), len(col))
    present, usable, right = (np.zeros(shape, dtype=bool) for _ in range(3))
    same = np.full(shape, -1, dtype=np.int64)
    codes: dict[str | None, int] = {}
    paper = metric == "paper"
    for e, name in enumerate(evaluators):
        for pid, row in condition[name].items():
            j = col.get(pid)
            if j is None:
                continue
            present[e, j] = True
            if paper:
                text = "" if row.answer is None else row.answer
                usable[e, j] = not has_paper_error_marker(text)
                right[e, j] = row.answer is not None and row.correct is True
                same[e, j] = codes.setdefault(text, len(codes))
            else:
                usable[e, j] = row.valid
                right[e, j] = row.correct is True
                same[e, j] = codes.setdefault(row.normalized, len(codes))
    return present, usable, same, right


def _mean_over_pairs(consistent: npt.NDArray[np.float64], compared: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Mean of C_ab over the pairs that compared something (nan when none did).

    Takes per-pair counts along the last axis: [P] for the data itself, [B, P] for B weighted resamples.
    """
    has = compared > 0
    rates = np.divide(consistent, compared, out=np.zeros_like(consistent, dtype=float), where=has)
    n = has.sum(axis=-1)
    return np.divide(rates.sum(axis=-1), n, out=np.full(n.shape, np.nan), where=n > 0)


def _result_from_tables(t: _PairTables, metric: ConsistencyMetric) -> ConsistencyResult:
    ids = np.asarray(t.problem_ids, dtype=object)
    pairs = []
    for i, (a, b) in enumerate(t.pairs):
        consistent = int(t.consistent[i].sum())
        correct = int(t.consistent_correct[i].sum())
        pairs.append(
            PairConsistency(
                a=a,
                b=b,
                total=int(t.present[i].sum()),
                compared=int(t.compared[i].sum()),
                consistent=consistent,
                consistent_correct=correct,
                consistent_wrong=consistent - correct,
                problems=tuple(ids[t.compared[i] > 0]),
            )
        )
    scored = [p for p in pairs if p.compared]
    values = np.array([p.value for p in scored])
    n = len(scored)
    total = sum(p.total for p in pairs)

    def avg(fractions: Iterable[float]) -> float:
        return float(np.mean(list(fractions))) if n else math.nan

    return ConsistencyResult(
        metric=metric,
        mean=float(values.mean()) if n else math.nan,
        std=float(values.std(ddof=0)) if n else math.nan,
        std_sample=float(values.std(ddof=1)) if n > 1 else math.nan,
        n_pairs=n,
        pairs=tuple(pairs),
        coverage=sum(p.compared for p in pairs) / total if total else math.nan,
        consistent_correct=avg(p.consistent_correct / p.compared for p in scored),
        consistent_wrong=avg(p.consistent_wrong / p.compared for p in scored),
        inconsistent=avg(p.inconsistent / p.compared for p in scored),
        problems=tuple(ids[(t.compared > 0).any(axis=0)]) if len(t.problem_ids) else (),
    )


def paper_consistency(condition_data: ConditionData) -> ConsistencyResult:
    """The paper's consistency of one condition, as its reference code computes it.

    For every unordered evaluator pair (a, b) and every problem both answered (aligned by id): skip the problem
    when either answer contains an error marker (`PAPER_ERROR_MARKERS`); otherwise it is consistent when the two
    answer strings are identical or both answers are correct. C_ab = consistent / non-skipped; the result's `mean`
    and `std` (population) over pairs are the paper's numbers.

    The reference code's quirk is reproduced on purpose: a crashed row (answer None) is read as the empty
    string, so two crashed rows agree, and a crashed row is never correct. Raw strings are compared ("5" and
    "5.0" disagree) and "both correct" counts as agreement; `strict_consistency` fixes both.
    """
    return _result_from_tables(_pair_tables(condition_data, "paper"), "paper")


def strict_consistency(condition_data: ConditionData) -> ConsistencyResult:
    """The project's strict consistency: agreement on normalized values, one invalid-answer policy.

    Per unordered evaluator pair and problem both answered (aligned by id): a problem where either answer is
    invalid (crashed or unparseable) is excluded and counted against coverage, the same policy for every
    condition; otherwise it is consistent only when the normalized values are equal (two correct but different
    values do not agree). Reports C_ab, mean / population std over pairs, coverage, and the consistent-correct /
    consistent-wrong / inconsistent breakdown.
    """
    return _result_from_tables(_pair_tables(condition_data, "strict"), "strict")


# --------------------------------------------------------------------------------------------------------------
# Accuracy, transfer matrix, agreement, self-consistency, transitions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccuracyResult:
    """Accuracy of one evaluator: correct / total, invalid answers (crashed or unparseable) counted as wrong."""

    correct: int
    total: int
    invalid: int

    @property
    def accuracy(self) -> float:
        """correct / total (nan for no rows)."""
        return self.correct / self.total if self.total else math.nan

    @property
    def invalid_rate(self) -> float:
        """invalid / total (nan for no rows)."""
        return self.invalid / self.total if self.total else math.nan


def evaluator_accuracy(rows: Mapping[str, AnswerRow]) -> AccuracyResult:
    """Accuracy of one evaluator's rows (problem id -> row); invalid rows count as wrong and are also counted."""
    _check_rows("rows", rows)
    return AccuracyResult(
        correct=sum(r.is_correct for r in rows.values()),
        total=len(rows),
        invalid=sum(not r.valid for r in rows.values()),
    )


def accuracy(condition_data: ConditionData) -> dict[str, AccuracyResult]:
    """Accuracy of every evaluator of a condition (the project's invalid-answer policy: invalid = wrong)."""
    return {name: evaluator_accuracy(rows) for name, rows in condition_data.items()}


@dataclass(frozen=True, slots=True)
class AgreementResult:
    """How often two answer sets give the same normalized value on the same problem.

    total: problems present in both; compared: those where both answers are valid; agree = agree_correct +
    agree_wrong (agree_correct: the shared answer is correct). rate = agree / compared; coverage = compared /
    total. problems: the compared ids, sorted.
    """

    agree: int
    agree_correct: int
    compared: int
    total: int
    problems: tuple[str, ...]

    @property
    def rate(self) -> float:
        """agree / compared (nan when nothing was compared)."""
        return self.agree / self.compared if self.compared else math.nan

    @property
    def agree_wrong(self) -> int:
        """Agreements on a wrong answer."""
        return self.agree - self.agree_correct

    @property
    def coverage(self) -> float:
        """compared / total (nan when no problem is shared)."""
        return self.compared / self.total if self.total else math.nan


def _agreement(x: Mapping[str, AnswerRow], y: Mapping[str, AnswerRow]) -> AgreementResult:
    _check_rows("x", x)
    _check_rows("y", y)
    shared = sorted(x.keys() & y.keys())
    agree = agree_correct = 0
    compared: list[str] = []
    for pid in shared:
        was_compared, consistent, both_correct = _strict_judge(x[pid], y[pid])
        if was_compared:
            compared.append(pid)
            agree += consistent
            agree_correct += both_correct
    return AgreementResult(agree, agree_correct, len(compared), len(shared), tuple(compared))


def source_to_target_agreement(
    source_rows: Mapping[str, AnswerRow], target_rows: Mapping[str, AnswerRow]
) -> AgreementResult:
    """Does the target give the source's own answer when given the source's CoT? (Not in the paper.)

    source_rows: the source model's own answers (from generating the CoT); target_rows: the target's answers
    with that CoT. Normalized values are compared on problems where both are valid; coverage says how many
    shared problems that left.
    """
    return _agreement(source_rows, target_rows)


@dataclass(frozen=True, eq=False)
class TransferMatrix:
    """A generator (source, rows) x evaluator (target, columns) grid.

    values[i, j]: the metric for source i's CoT given to target j (nan where the cell has no data); counts[i, j]:
    its denominator (rows for accuracy, compared problems for agreement).
    """

    metric: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    values: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]

    def cell(self, source: str, target: str) -> float:
        """The value for (source, target); KeyError for an unknown name."""
        try:
            return float(self.values[self.sources.index(source), self.targets.index(target)])
        except ValueError:
            raise KeyError((source, target)) from None

    def to_dict(self) -> dict[str, dict[str, float]]:
        """source -> target -> value, cells without data left out."""
        return {
            s: {t: float(v) for t, v in zip(self.targets, self.values[i], strict=True) if not math.isnan(v)}
            for i, s in enumerate(self.sources)
        }


def transfer_matrix(
    transfer_data: Mapping[str, Mapping[str, Mapping[str, AnswerRow]]],
    metric: Literal["accuracy", "source_agreement"] = "accuracy",
    source_answers: Mapping[str, Mapping[str, AnswerRow]] | None = None,
) -> TransferMatrix:
    """The generator x evaluator grid of the transfer condition (C); not in the paper, which reports one
    consistency per generator.

    transfer_data: source -> target -> problem id -> the target's row given the source's CoT (S = T included).
    metric "accuracy": each cell is the target's accuracy (invalid = wrong). metric "source_agreement": each cell
    is `source_to_target_agreement` with the source's own answers, which must then be given in `source_answers`
    (source -> problem id -> row). Targets are ordered by first appearance.
    """
    if metric not in ("accuracy", "source_agreement"):
        raise ValueError(f"metric must be 'accuracy' or 'source_agreement', got {metric!r}")
    if metric == "source_agreement" and source_answers is None:
        raise ValueError("metric 'source_agreement' needs source_answers (each source's own answers)")
    sources = tuple(transfer_data)
    targets = tuple(dict.fromkeys(t for by_target in transfer_data.values() for t in by_target))
    values = np.full((len(sources), len(targets)), np.nan)
    counts = np.zeros((len(sources), len(targets)), dtype=np.int64)
    for i, s in enumerate(sources):
        for t, rows in transfer_data[s].items():
            j = targets.index(t)
            if metric == "accuracy":
                acc = evaluator_accuracy(rows)
                values[i, j], counts[i, j] = acc.accuracy, acc.total
            else:
                assert source_answers is not None
                if s not in source_answers:
                    raise KeyError(f"source_answers has no rows for source {s!r}")
                agr = source_to_target_agreement(source_answers[s], rows)
                values[i, j], counts[i, j] = agr.rate, agr.compared
    return TransferMatrix(metric, sources, targets, values, counts)


@dataclass(frozen=True, slots=True)
class SelfConsistencyResult:
    """Agreement of sampled answers with the greedy one, and among the samples.

    greedy_agreement: pooled over all (sample, problem) comparisons (agree / compared); per_sample: each
    sample's agreement with greedy. among_samples: pooled agreement over all unordered sample pairs (nan with
    fewer than two samples); among_samples_compared: its denominator.
    """

    greedy_agreement: float
    per_sample: tuple[AgreementResult, ...]
    among_samples: float
    among_samples_compared: int

    @property
    def n_samples(self) -> int:
        """Number of sampled answer sets."""
        return len(self.per_sample)

    @property
    def coverage(self) -> float:
        """Pooled compared / shared problems of the greedy comparisons."""
        total = sum(a.total for a in self.per_sample)
        return sum(a.compared for a in self.per_sample) / total if total else math.nan


def _pooled(results: Iterable[AgreementResult]) -> tuple[float, int]:
    agree = compared = 0
    for r in results:
        agree += r.agree
        compared += r.compared
    return (agree / compared if compared else math.nan), compared


def self_consistency(
    greedy_rows: Mapping[str, AnswerRow], sampled_rows_list: Sequence[Mapping[str, AnswerRow]]
) -> SelfConsistencyResult:
    """Self-consistency: do sampled runs (condition B2) give the greedy answer (B1)? (Not in the paper.)

    Normalized values are compared on problems where both answers are valid (strict policy). Agreement is pooled
    over comparisons, so a sample with more valid answers weighs more.
    """
    per_sample = tuple(_agreement(greedy_rows, sampled) for sampled in sampled_rows_list)
    greedy, _ = _pooled(per_sample)
    among, among_n = _pooled(_agreement(x, y) for x, y in itertools.combinations(sampled_rows_list, 2))
    return SelfConsistencyResult(greedy, per_sample, among, among_n)


_STATES: tuple[str, ...] = ("correct", "wrong", "invalid")


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """How answers change from the empty condition (A) to another condition, per problem.

    counts[(before, after)] over states correct / wrong / invalid (all nine keys present); the two-state
    properties fold invalid into wrong. unmatched: problems present in only one of the two inputs (not counted).
    """

    counts: Mapping[tuple[str, str], int]
    unmatched: int

    @property
    def total(self) -> int:
        """Problems present in both inputs."""
        return sum(self.counts.values())

    def _two_state(self, before: bool, after: bool) -> int:
        def is_correct(s: str) -> bool:
            return s == "correct"

        return sum(n for (b, a), n in self.counts.items() if is_correct(b) == before and is_correct(a) == after)

    @property
    def wrong_to_correct(self) -> int:
        """Problems the condition fixed (invalid counted as wrong)."""
        return self._two_state(False, True)

    @property
    def correct_to_wrong(self) -> int:
        """Problems the condition broke (invalid counted as wrong)."""
        return self._two_state(True, False)

    @property
    def correct_to_correct(self) -> int:
        """Problems correct in both."""
        return self._two_state(True, True)

    @property
    def wrong_to_wrong(self) -> int:
        """Problems wrong (or invalid) in both."""
        return self._two_state(False, False)


def transitions(empty_rows: Mapping[str, AnswerRow], condition_rows: Mapping[str, AnswerRow]) -> TransitionResult:
    """Transitions of one evaluator from the empty condition (A) to another (not in the paper).

    Aligned by problem id; each row's state is `AnswerRow.state` (invalid = crashed or unparseable).
    """
    _check_rows("empty_rows", empty_rows)
    _check_rows("condition_rows", condition_rows)
    counts = {(b, a): 0 for b in _STATES for a in _STATES}
    shared = empty_rows.keys() & condition_rows.keys()
    for pid in shared:
        counts[(empty_rows[pid].state, condition_rows[pid].state)] += 1
    unmatched = len(empty_rows.keys() ^ condition_rows.keys())
    return TransitionResult(counts, unmatched)


# --------------------------------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KappaResult:
    """Fleiss' kappa with its parts: observed agreement P-bar, chance agreement P_e, and the table's size.

    kappa = (observed - expected) / (1 - expected); nan when expected == 1 (every rating in one category: the
    raters agree perfectly but kappa is 0/0). excluded: items the caller's selection dropped (see
    `condition_fleiss_kappa`).
    """

    kappa: float
    observed: float
    expected: float
    n_items: int
    n_raters: int
    n_categories: int
    excluded: int = 0


def fleiss_kappa_from_counts(counts: npt.ArrayLike) -> KappaResult:
    """Fleiss' kappa from an items x categories table of rater counts (every row sums to the same rater count).

    Needs at least one item and two raters per item. A single category overall (chance agreement 1) gives
    kappa nan: agreement is perfect, but there is no variation to measure agreement beyond chance against.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError("counts must be a non-empty items x categories table")
    if (table < 0).any():
        raise ValueError("counts must be non-negative")
    raters = table.sum(axis=1)
    m = raters[0]
    if not np.all(raters == m):
        raise ValueError("every item needs the same number of raters")
    if m < 2:
        raise ValueError("Fleiss' kappa needs at least two raters per item")
    n_items = table.shape[0]
    per_item = ((table**2).sum(axis=1) - m) / (m * (m - 1))
    observed = float(per_item.mean())
    p = table.sum(axis=0) / (n_items * m)
    expected = float((p**2).sum())
    used = int((p > 0).sum())
    # P_e is exactly 1 only when a single category was used; otherwise it is < 1 and the ratio is defined.
    kappa = math.nan if used <= 1 else (observed - expected) / (1.0 - expected)
    return KappaResult(kappa, observed, expected, n_items, int(m), used)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> KappaResult:
    """Fleiss' kappa over items, each the list of categorical answers its raters gave (not in the paper).

    Every item must have the same number (>= 2) of raters; the categories are whatever values appear. Rater
    identity does not matter to Fleiss' kappa, only each item's category counts. See `fleiss_kappa_from_counts`
    for the degenerate single-category case (nan).
    """
    if not items:
        raise ValueError("Fleiss' kappa needs at least one item")
    categories = {c: k for k, c in enumerate(dict.fromkeys(c for item in items for c in item))}
    table = np.zeros((len(items), max(len(categories), 1)))
    for i, item in enumerate(items):
        for c in item:
            table[i, categories[c]] += 1
    return fleiss_kappa_from_counts(table)


def condition_fleiss_kappa(condition_data: ConditionData) -> KappaResult:
    """Multi-rater agreement of a condition: Fleiss' kappa with evaluators as raters, normalized values as categories.

    Only problems answered validly by every evaluator are used (the strict policy); the others are counted in
    `excluded`. Raises ValueError when no problem is left.
    """
    evaluators = _check_condition(condition_data)
    all_ids = sorted(set().union(*(set(rows) for rows in condition_data.values())))
    items: list[list[Hashable]] = []
    for pid in all_ids:
        rows = [condition_data[e].get(pid) for e in evaluators]
        if all(r is not None and r.valid for r in rows):
            items.append([r.normalized for r in rows if r is not None])
    if not items:
        raise ValueError("no problem was answered validly by every evaluator")
    result = fleiss_kappa(items)
    return KappaResult(
        result.kappa,
        result.observed,
        result.expected,
        result.n_items,
        result.n_raters,
        result.n_categories,
        excluded=len(all_ids) - len(items),
    )


# --------------------------------------------------------------------------------------------------------------
# Bootstrap over problems
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """A percentile bootstrap confidence interval.

    estimate: the statistic on the original data; low / high: the (1 - confidence) / 2 and (1 + confidence) / 2
    quantiles of the resampled statistics; std_error: their standard deviation. n: problems resampled;
    n_valid: resamples whose statistic was defined (not nan).
    """

    estimate: float
    low: float
    high: float
    std_error: float
    confidence: float
    n_resamples: int
    n: int
    n_valid: int


@dataclass(frozen=True, slots=True)
class PairedBootstrapResult:
    """Paired bootstrap of consistency(X) - consistency(Y), both recomputed on the same resampled problem ids.

    difference = estimate_x - estimate_y on the original data; low / high: percentile CI of the difference;
    p_x_greater: fraction of (defined) resamples where X's consistency exceeds Y's; p_tie: fraction where equal.
    """

    estimate_x: float
    estimate_y: float
    difference: float
    low: float
    high: float
    p_x_greater: float
    p_tie: float
    confidence: float
    n_resamples: int
    n: int
    n_valid: int


def _check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")


def _resample_counts(rng: np.random.Generator, n: int, n_resamples: int) -> npt.NDArray[np.float64]:
    """[n_resamples, n]: how many times each of n items is drawn in each resample (draws with replacement)."""
    draws = rng.integers(0, n, size=(n_resamples, n))
    flat = (draws + (np.arange(n_resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


# Resamples are drawn this many items at a time, so memory stays bounded however many problems there are.
_DRAWS_PER_CHUNK = 2_000_000


def _resample_chunks(rng: np.random.Generator, n: int, n_resamples: int) -> Iterator[npt.NDArray[np.float64]]:
    """`_resample_counts` a few resamples at a time: the same generator gives the same draws in chunks."""
    step = max(1, _DRAWS_PER_CHUNK // n)
    for start in range(0, n_resamples, step):
        yield _resample_counts(rng, n, min(step, n_resamples - start))


def _interval(stats: npt.NDArray[np.float64], confidence: float) -> tuple[float, float, float, int]:
    ok = stats[~np.isnan(stats)]
    if ok.size == 0:
        return math.nan, math.nan, math.nan, 0
    alpha = 1.0 - confidence
    low, high = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(ok.std(ddof=1)) if ok.size > 1 else math.nan, int(ok.size)


def bootstrap_ci(
    per_problem_values: npt.ArrayLike,
    statistic: Callable[..., Any] = np.mean,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap CI of a statistic of per-problem values, resampling problems with replacement.

    The paper reports a std over evaluator pairs, which are not independent (pairs share models); an interval over
    problems says how much a number depends on the problems drawn. `per_problem_values` has one entry (or row) per
    problem. The statistic is first called once on all resamples as statistic(samples, axis=1) (numpy reductions
    support this); if it does not take `axis`, it is called on each resample. Deterministic for a given seed.
    """
    _check_bootstrap_args(n_resamples, confidence)
    values = np.asarray(per_problem_values, dtype=float)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError("per_problem_values must hold at least one problem")
    n = values.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    samples = values[idx]
    stats: npt.NDArray[np.float64] | None = None
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=float)
        if out.shape == (n_resamples,):
            stats = out
    except TypeError:
        pass
    if stats is None:
        stats = np.array([float(statistic(s)) for s in samples])
    low, high, se, n_valid = _interval(stats, confidence)
    return BootstrapResult(float(statistic(values)), low, high, se, confidence, n_resamples, n, n_valid)


def consistency_ci(
    condition_data: ConditionData,
    metric: ConsistencyMetric = "paper",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Bootstrap CI of a condition's mean consistency over pairs, resampling problem ids (not pairs).

    Each resample draws problem ids with replacement from every id any evaluator answered; every pair's C_ab is
    recomputed on those draws (a problem drawn twice counts twice) and averaged over the pairs that compared
    something. The estimate equals `paper_consistency(...).mean` or `strict_consistency(...).mean`.
    """
    _check_bootstrap_args(n_resamples, confidence)
    t = _pair_tables(condition_data, metric)
    n = len(t.problem_ids)
    if n == 0:
        raise ValueError("the condition has no problems")
    estimate = float(_mean_over_pairs(t.consistent.sum(axis=1), t.compared.sum(axis=1)))
    # [B, N] @ [N, P] -> per-resample, per-pair weighted counts; one matmul replaces B x P loops. Counts are whole
    # numbers, exact in float64, so chunking the resamples changes nothing.
    stats = np.concatenate(
        [
            _mean_over_pairs(w @ t.consistent.T, w @ t.compared.T)
            for w in _resample_chunks(np.random.default_rng(seed), n, n_resamples)
        ]
    )
    low, high, se, n_valid = _interval(stats, confidence)
    return BootstrapResult(estimate, low, high, se, confidence, n_resamples, n, n_valid)


def paired_bootstrap(
    condition_x: ConditionData,
    condition_y: ConditionData,
    metric: ConsistencyMetric = "paper",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedBootstrapResult:
    """Paired bootstrap: does condition X have higher consistency than condition Y on the same problems?

    Problem ids (the union of both conditions' ids) are resampled once per resample and applied to both
    conditions, so the comparison is paired; each side's mean consistency over pairs is recomputed. Reports the
    difference X - Y with a percentile CI, and the fraction of resamples in which X exceeds Y.
    """
    _check_bootstrap_args(n_resamples, confidence)
    ids_x = set().union(*(set(rows) for rows in condition_x.values()))
    ids_y = set().union(*(set(rows) for rows in condition_y.values()))
    universe = sorted(ids_x | ids_y)
    if not universe:
        raise ValueError("the conditions have no problems")
    tx = _pair_tables(condition_x, metric, universe)
    ty = _pair_tables(condition_y, metric, universe)
    est_x = float(_mean_over_pairs(tx.consistent.sum(axis=1), tx.compared.sum(axis=1)))
    est_y = float(_mean_over_pairs(ty.consistent.sum(axis=1), ty.compared.sum(axis=1)))
    diff = np.concatenate(
        [
            _mean_over_pairs(w @ tx.consistent.T, w @ tx.compared.T)
            - _mean_over_pairs(w @ ty.consistent.T, w @ ty.compared.T)
            for w in _resample_chunks(np.random.default_rng(seed), len(universe), n_resamples)
        ]
    )
    low, high, _, n_valid = _interval(diff, confidence)
    ok = diff[~np.isnan(diff)]
    p_greater = float((ok > 0).mean()) if ok.size else math.nan
    p_tie = float((ok == 0).mean()) if ok.size else math.nan
    return PairedBootstrapResult(
        est_x, est_y, est_x - est_y, low, high, p_greater, p_tie, confidence, n_resamples, len(universe), n_valid
    )


# --------------------------------------------------------------------------------------------------------------
# Correlations (no scipy)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorrelationResult:
    """A correlation coefficient and the number of (x, y) pairs it used (nan when undefined)."""

    method: Literal["pearson", "spearman", "kendall_tau_b"]
    value: float
    n: int


def _paired_finite(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length ({a.size} vs {b.size})")
    # Pairs with a nan or inf on either side carry no information about the relation; drop them (n says so).
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _pearson_arrays(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    if a.size < 2:
        return math.nan
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    if denom == 0.0:
        return math.nan  # a constant variable has no correlation
    return max(-1.0, min(1.0, float((da * db).sum()) / denom))


def _average_ranks(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks, ties getting the mean of the ranks they span."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse].astype(float)


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> CorrelationResult:
    """Pearson's r; nan with fewer than two pairs or a constant variable. Non-finite pairs are dropped."""
    a, b = _paired_finite(x, y)
    return CorrelationResult("pearson", _pearson_arrays(a, b), int(a.size))


def spearman(x: npt.ArrayLike, y: npt.ArrayLike) -> CorrelationResult:
    """Spearman's rho: Pearson's r of average ranks (ties share their mean rank). Non-finite pairs are dropped."""
    a, b = _paired_finite(x, y)
    if a.size == 0:
        return CorrelationResult("spearman", math.nan, 0)
    return CorrelationResult("spearman", _pearson_arrays(_average_ranks(a), _average_ranks(b)), int(a.size))


def kendall_tau_b(x: npt.ArrayLike, y: npt.ArrayLike) -> CorrelationResult:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)), n0 = n(n-1)/2.

    Tie-corrected, as scipy.stats.kendalltau's default; nan when either variable is constant or n < 2.
    O(n^2) memory, meant for the few dozen points a correlation of conditions has. Non-finite pairs are dropped.
    """
    a, b = _paired_finite(x, y)
    n = int(a.size)
    if n < 2:
        return CorrelationResult("kendall_tau_b", math.nan, n)
    iu = np.triu_indices(n, 1)
    sa = np.sign(a[:, None] - a[None, :])[iu]
    sb = np.sign(b[:, None] - b[None, :])[iu]
    n0 = sa.size
    ties_a = int((sa == 0).sum())
    ties_b = int((sb == 0).sum())
    denom = math.sqrt(float(n0 - ties_a) * float(n0 - ties_b))
    if denom == 0.0:
        return CorrelationResult("kendall_tau_b", math.nan, n)
    s = float((sa * sb).sum())
    return CorrelationResult("kendall_tau_b", max(-1.0, min(1.0, s / denom)), n)


# --------------------------------------------------------------------------------------------------------------
# Human ratings (the paper's user study)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingRow:
    """One rating of the paper's user study (`cotbridge.analysis.human_ratings` reads them from its CSV).

    participant_id; item: the MedCalc row number the CoTs answered ("185"); model: the colour shown ("orange-
    model"); criterion: "Clarity of Steps", "Ease of Following", "Confidence" (1-5) or "best-overall" (stored
    as 6 - rank, so 2-5 and higher is better); value; model_label: the CoT's source ("OSS", "DAPO",
    "QwQ+DAPO/OSS", "QwQ+OSS/DAPO").
    """

    participant_id: str
    item: str
    model: str
    criterion: str
    value: float
    model_label: str


def _criteria_set(criteria: str | Sequence[str] | None) -> set[str]:
    if criteria is None:
        return set(LIKERT_CRITERIA)
    return {criteria} if isinstance(criteria, str) else set(criteria)


def mean_ratings(ratings_rows: Iterable[RatingRow], criteria: str | Sequence[str] | None = None) -> dict[str, float]:
    """Mean rating per model_label over the chosen criteria (default: the three Likert criteria, pooled)."""
    chosen = _criteria_set(criteria)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in ratings_rows:
        if r.criterion in chosen:
            sums[r.model_label] = sums.get(r.model_label, 0.0) + r.value
            counts[r.model_label] = counts.get(r.model_label, 0) + 1
    return {label: sums[label] / counts[label] for label in sums}


@dataclass(frozen=True, slots=True)
class HumanCorrelationResult:
    """Correlation of per-condition consistency with mean human ratings (one point per model_label).

    labels, ratings (mean rating), consistency: the paired points, in the same order; n = len(labels).
    """

    labels: tuple[str, ...]
    ratings: tuple[float, ...]
    consistency: tuple[float, ...]
    pearson: CorrelationResult
    spearman: CorrelationResult
    kendall: CorrelationResult

    @property
    def n(self) -> int:
        """Number of paired points (the user study has 4: one per CoT source)."""
        return len(self.labels)


def human_rating_correlation(
    consistency_by_condition: Mapping[str, float],
    ratings_rows: Iterable[RatingRow],
    label_to_condition: Mapping[str, str],
    criteria: str | Sequence[str] | None = None,
) -> HumanCorrelationResult:
    """Correlate per-condition consistency with the human preference ratings of the paper's user study.

    Ratings are averaged per model_label over `criteria` (default: the three Likert criteria); each label in
    `label_to_condition` is paired with `consistency_by_condition[label_to_condition[label]]`. Returns Pearson,
    Spearman and Kendall tau-b with n stated (the paper's study gives n = 4, far too few for significance).
    Raises KeyError when a mapped label has no ratings or its condition has no consistency value.
    """
    means = mean_ratings(ratings_rows, criteria)
    labels: list[str] = []
    ratings: list[float] = []
    values: list[float] = []
    for label, condition in label_to_condition.items():
        if label not in means:
            raise KeyError(f"no ratings for model_label {label!r} (criteria {sorted(_criteria_set(criteria))})")
        if condition not in consistency_by_condition:
            raise KeyError(f"no consistency value for condition {condition!r} (label {label!r})")
        labels.append(label)
        ratings.append(means[label])
        values.append(float(consistency_by_condition[condition]))
    return HumanCorrelationResult(
        labels=tuple(labels),
        ratings=tuple(ratings),
        consistency=tuple(values),
        pearson=pearson(values, ratings),
        spearman=spearman(values, ratings),
        kendall=kendall_tau_b(values, ratings),
    )
