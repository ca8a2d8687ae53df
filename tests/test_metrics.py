"""cotbridge.analysis.metrics (and the user-study ratings reader): hand-computed cases for every metric, properties,
and the paper's released data."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotbridge.analysis.human_ratings import load_ratings, parse_ratings_csv
from cotbridge.analysis.metrics import (
    LIKERT_CRITERIA,
    AnswerRow,
    ConditionData,
    accuracy,
    bootstrap_ci,
    condition_fleiss_kappa,
    consistency_ci,
    evaluator_accuracy,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    has_paper_error_marker,
    human_rating_correlation,
    kendall_tau_b,
    mean_ratings,
    paired_bootstrap,
    paper_consistency,
    pearson,
    rows_by_id,
    self_consistency,
    source_to_target_agreement,
    spearman,
    strict_consistency,
    transfer_matrix,
    transitions,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
USER_STUDY = SHARED_DATA / "genex-medcalc" / "user_study"
OUTPUTS = SHARED_DATA / "genex-medcalc" / "outputs"


def row(pid: str, answer: str | None, normalized: str | None = None, correct: bool | None = None) -> AnswerRow:
    return AnswerRow(pid, answer, normalized, correct)


def ok(pid: str, answer: str, normalized: str, correct: bool) -> AnswerRow:
    return AnswerRow(pid, answer, normalized, correct)


def crashed(pid: str) -> AnswerRow:
    return AnswerRow(pid, None, None, None)


def index(*rows: AnswerRow) -> dict[str, AnswerRow]:
    return rows_by_id(rows)


# Three evaluators x five problems, built so every rule fires at least once:
#   p1 gold 5:   A "5" ok       B "5.0" ok (same value, different string)   C "6" wrong
#   p2 gold 10:  A "12" wrong   B "12" wrong                                C "12" wrong (agreement on a wrong answer)
#   p3:          A crashed      B crashed                                   C "7" wrong
#   p4 gold 3:   A "N/A" (error marker, unparseable)  B "3" ok              C "3" ok
#   p5 gold ~10 (tolerance 9.5-10.5): A "9.9" ok  B "10.1" ok (both correct, different values)  C "abc" unparseable
FIXTURE: dict[str, dict[str, AnswerRow]] = {
    "A": index(
        ok("p1", "5", "5", True),
        ok("p2", "12", "12", False),
        crashed("p3"),
        row("p4", "N/A"),
        ok("p5", "9.9", "9.9", True),
    ),
    "B": index(
        ok("p1", "5.0", "5", True),
        ok("p2", "12", "12", False),
        crashed("p3"),
        ok("p4", "3", "3", True),
        ok("p5", "10.1", "10.1", True),
    ),
    "C": index(
        ok("p1", "6", "6", False),
        ok("p2", "12", "12", False),
        ok("p3", "7", "7", False),
        ok("p4", "3", "3", True),
        row("p5", "abc"),
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------------------------


def test_answer_row_states_and_validation() -> None:
    assert ok("p", "5", "5", True).state == "correct"
    assert ok("p", "6", "6", False).state == "wrong"
    assert row("p", "abc").state == "invalid" and not row("p", "abc").valid
    assert crashed("p").crashed and crashed("p").state == "invalid"
    # A parseable answer without a correctness label is valid but not correct.
    assert row("p", "5", "5", None).state == "wrong"
    with pytest.raises(ValueError, match="crashed row"):
        AnswerRow("p", None, "5", None)


def test_answer_row_from_score_like() -> None:
    class Score:
        parsed = "5.0"
        normalized = "5"
        correct = True

    assert AnswerRow.from_score("p1", Score()) == ok("p1", "5.0", "5", True)
    assert AnswerRow.from_score("p1", None) == crashed("p1")


def test_rows_by_id_rejects_duplicates_and_metrics_reject_mismatched_keys() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        rows_by_id([crashed("p1"), crashed("p1")])
    bad = {"A": {"p1": crashed("p2")}, "B": {"p1": crashed("p1")}}
    with pytest.raises(ValueError, match="holds the row of problem"):
        paper_consistency(bad)
    with pytest.raises(ValueError, match="at least two evaluators"):
        strict_consistency({"A": FIXTURE["A"]})


def test_error_markers_are_the_papers_four_case_sensitive() -> None:
    assert has_paper_error_marker("name 'N' is not defined")
    assert has_paper_error_marker("time data 'N/A' does not match format '%m/%d/%Y'")
    assert has_paper_error_marker("leading zeros in decimal integer literals are not permitted;")
    assert has_paper_error_marker("N/A")
    assert not has_paper_error_marker("n/a")  # the reference matched case-sensitively
    assert not has_paper_error_marker("Not Found")  # not one of the paper's four
    assert not has_paper_error_marker(None)  # a crash reads as "", which has no marker


# ---------------------------------------------------------------------------------------------------------------
# Paper consistency
# ---------------------------------------------------------------------------------------------------------------


def test_paper_consistency_by_hand() -> None:
    r = paper_consistency(FIXTURE)
    # A-B: p1 strings differ but both correct -> agree; p2 identical; p3 two crashes read as "" == "" -> agree
    #      (the quirk); p4 skipped (A is "N/A"); p5 both correct -> agree.                    4/4 = 1.0
    # A-C: p1 "5" vs "6" no; p2 identical yes; p3 "" vs "7" no; p4 skipped; p5 C not correct no.  1/4 = 0.25
    # B-C: p1 no; p2 yes; p3 no; p4 "3" == "3" yes; p5 no.                                    2/5 = 0.4
    ab, ac, bc = r.pair("A", "B"), r.pair("C", "A"), r.pair("B", "C")
    assert (ab.consistent, ab.compared, ab.total, ab.excluded) == (4, 4, 5, 1)
    assert (ac.consistent, ac.compared) == (1, 4)
    assert (bc.consistent, bc.compared) == (2, 5)
    assert ab.problems == ("p1", "p2", "p3", "p5") and bc.problems == ("p1", "p2", "p3", "p4", "p5")
    # Both-correct agreements: A-B p1, p5; B-C p4. The rest of the agreement mass is on wrong answers.
    assert (ab.consistent_correct, ab.consistent_wrong) == (2, 2)
    assert (ac.consistent_correct, ac.consistent_wrong) == (0, 1)
    assert (bc.consistent_correct, bc.consistent_wrong) == (1, 1)
    # mean = (1 + 0.25 + 0.4) / 3 = 0.55; deviations 0.45, -0.3, -0.15, squares sum 0.315:
    # population std = sqrt(0.315 / 3) = 0.324037..., sample std = sqrt(0.315 / 2) = 0.396863...
    assert r.mean == pytest.approx(0.55)
    assert r.std == pytest.approx(math.sqrt(0.105))
    assert r.std_sample == pytest.approx(math.sqrt(0.1575))
    assert r.std != pytest.approx(r.std_sample)
    assert r.n_pairs == 3
    assert r.coverage == pytest.approx(13 / 15)
    assert r.problems == ("p1", "p2", "p3", "p4", "p5")


def test_population_std_matches_numpy_ddof0() -> None:
    r = paper_consistency(FIXTURE)
    values = [p.value for p in r.pairs]
    assert r.std == pytest.approx(float(np.std(values, ddof=0)))
    assert r.std_sample == pytest.approx(float(np.std(values, ddof=1)))


def test_two_crashed_rows_agree_under_paper_but_are_excluded_under_strict() -> None:
    data = {"A": index(crashed("p1")), "B": index(crashed("p1"))}
    paper = paper_consistency(data)
    assert paper.mean == 1.0 and paper.pairs[0].compared == 1
    # A crashed row is never "correct", even if its label says so: no both-correct credit.
    assert paper.pairs[0].consistent_correct == 0
    strict = strict_consistency(data)
    assert strict.pairs[0].compared == 0 and strict.pairs[0].excluded == 1
    assert math.isnan(strict.mean) and strict.n_pairs == 0 and strict.coverage == 0.0


def test_crashed_row_labelled_correct_is_not_correct_for_paper() -> None:
    data = {"A": {"p1": AnswerRow("p1", None, None, True)}, "B": index(ok("p1", "4", "4", True))}
    assert paper_consistency(data).mean == 0.0


def test_both_correct_different_strings_agree_under_paper_only() -> None:
    # Tolerance-range problem: 9.9 and 10.1 are both correct. Paper: agree. Strict: different values disagree.
    data = {"A": index(ok("p1", "9.9", "9.9", True)), "B": index(ok("p1", "10.1", "10.1", True))}
    assert paper_consistency(data).mean == 1.0
    assert strict_consistency(data).mean == 0.0


def test_same_value_different_strings_agree_under_strict_only() -> None:
    # Both wrong, "5" vs "5.0": raw strings differ (paper: disagree), values are equal (strict: agree).
    data = {"A": index(ok("p1", "5", "5", False)), "B": index(ok("p1", "5.0", "5", False))}
    assert paper_consistency(data).mean == 0.0
    strict = strict_consistency(data)
    assert strict.mean == 1.0 and strict.consistent_wrong == 1.0 and strict.consistent_correct == 0.0


@pytest.mark.parametrize(
    "marker",
    [
        "name 'N' is not defined",
        "time data 'N/A' does not match format '%m/%d/%Y'",
        "leading zeros in decimal integer literals are not permitted; use an 0o prefix",
    ],
)
def test_error_marker_skips_the_problem_for_the_pair(marker: str) -> None:
    # p1: B holds the marker -> skipped even though A has a real answer; p2: agree. C_AB = 1/1.
    data = {
        "A": index(ok("p1", "5", "5", True), ok("p2", "3", "3", False)),
        "B": index(row("p1", marker), ok("p2", "3", "3", False)),
    }
    r = paper_consistency(data)
    assert (r.pairs[0].compared, r.pairs[0].consistent, r.pairs[0].total) == (1, 1, 2)
    # Two identical marker strings are skipped too, not counted as agreement.
    same = {"A": index(row("p1", marker)), "B": index(row("p1", marker))}
    assert paper_consistency(same).pairs[0].compared == 0


def test_alignment_is_by_problem_id_not_order_and_missing_problems_are_left_out() -> None:
    a = {pid: ok(pid, v, v, v == "1") for pid, v in [("p1", "1"), ("p2", "2"), ("p3", "3")]}
    # B lists its rows in reverse order and has an extra problem p4; C lacks p2.
    b = {pid: ok(pid, v, v, v == "1") for pid, v in [("p4", "9"), ("p3", "3"), ("p2", "0"), ("p1", "1")]}
    c = {pid: ok(pid, v, v, v == "1") for pid, v in [("p3", "3"), ("p1", "1")]}
    r = paper_consistency({"A": a, "B": b, "C": c})
    # A-B shares p1..p3: p1 agree, p2 "2" vs "0" no, p3 agree -> 2/3. A-C shares p1, p3: 2/2. B-C: p1, p3: 2/2.
    assert (r.pair("A", "B").consistent, r.pair("A", "B").total) == (2, 3)
    assert r.pair("A", "C").value == 1.0 and r.pair("A", "C").total == 2
    assert r.pair("B", "C").value == 1.0
    assert r.mean == pytest.approx((2 / 3 + 1 + 1) / 3)
    # By position, A-B would compare p1 with p4 etc.; by id the order never matters:
    shuffled = {"C": dict(reversed(list(c.items()))), "B": dict(sorted(b.items())), "A": a}
    assert paper_consistency(shuffled).mean == pytest.approx(r.mean)


# ---------------------------------------------------------------------------------------------------------------
# Strict consistency
# ---------------------------------------------------------------------------------------------------------------


def test_strict_consistency_by_hand() -> None:
    r = strict_consistency(FIXTURE)
    # A-B: p1 5 == 5 (both correct), p2 12 == 12 (wrong), p3 crashed -> excluded, p4 A invalid -> excluded,
    #      p5 9.9 != 10.1 -> inconsistent.                                 2/3, breakdown 1 / 1 / 1
    # A-C: p1 5 != 6, p2 12 == 12 (wrong), p3 excluded, p4 excluded, p5 C invalid -> excluded. 1/2, 0 / 1 / 1
    # B-C: p1 5 != 6, p2 agree (wrong), p3 excluded, p4 3 == 3 (correct), p5 excluded.          2/3, 1 / 1 / 1
    ab, ac, bc = r.pair("A", "B"), r.pair("A", "C"), r.pair("B", "C")
    assert (ab.consistent, ab.compared, ab.consistent_correct, ab.consistent_wrong, ab.inconsistent) == (2, 3, 1, 1, 1)
    assert (ac.consistent, ac.compared, ac.consistent_correct, ac.consistent_wrong, ac.inconsistent) == (1, 2, 0, 1, 1)
    assert (bc.consistent, bc.compared, bc.consistent_correct, bc.consistent_wrong, bc.inconsistent) == (2, 3, 1, 1, 1)
    assert ab.problems == ("p1", "p2", "p5") and ac.problems == ("p1", "p2")
    assert ab.coverage == pytest.approx(3 / 5)
    # mean = (2/3 + 1/2 + 2/3) / 3 = 11/18; deviations 1/18, -2/18, 1/18 -> population var = 6/324/3 = 1/162.
    assert r.mean == pytest.approx(11 / 18)
    assert r.std == pytest.approx(math.sqrt(1 / 162))
    assert r.coverage == pytest.approx(8 / 15)
    # Breakdown averaged over pairs: cc (1/3 + 0 + 1/3)/3 = 2/9; cw (1/3 + 1/2 + 1/3)/3 = 7/18; inc the same.
    assert r.consistent_correct == pytest.approx(2 / 9)
    assert r.consistent_wrong == pytest.approx(7 / 18)
    assert r.inconsistent == pytest.approx(7 / 18)
    assert r.consistent_correct + r.consistent_wrong == pytest.approx(r.mean)
    # p3 was compared by no pair (two crashes, and C vs a crash).
    assert r.problems == ("p1", "p2", "p4", "p5")


def test_pair_lookup_unknown_pair_raises() -> None:
    with pytest.raises(KeyError):
        paper_consistency(FIXTURE).pair("A", "Z")


# ---------------------------------------------------------------------------------------------------------------
# Accuracy, transfer matrix, agreement, self-consistency, transitions
# ---------------------------------------------------------------------------------------------------------------


def test_accuracy_counts_invalid_as_wrong() -> None:
    acc = accuracy(FIXTURE)
    # A: correct p1, p5 (2/5); invalid p3 (crash), p4 (unparseable).
    # B: correct p1, p4, p5 (3/5); invalid p3.  C: correct p4 (1/5); invalid p5.
    assert (acc["A"].correct, acc["A"].total, acc["A"].invalid) == (2, 5, 2)
    assert acc["A"].accuracy == pytest.approx(0.4) and acc["A"].invalid_rate == pytest.approx(0.4)
    assert (acc["B"].correct, acc["B"].invalid, acc["B"].accuracy) == (3, 1, pytest.approx(0.6))
    assert (acc["C"].correct, acc["C"].invalid, acc["C"].accuracy) == (1, 1, pytest.approx(0.2))
    # An unparseable row that a reference label calls correct is still wrong here (invalid = wrong).
    assert evaluator_accuracy(index(row("p1", "str(140*2)", None, True))).correct == 0
    assert math.isnan(evaluator_accuracy({}).accuracy)


def test_source_to_target_agreement_by_hand() -> None:
    source = index(ok("p1", "5", "5", True), ok("p2", "8", "8", False), ok("p3", "1", "1", False), crashed("p4"))
    target = index(
        ok("p1", "5.0", "5", True),  # agrees on the correct value
        ok("p2", "9", "9", False),  # disagrees
        ok("p3", "1", "1", False),  # agrees on a wrong value
        ok("p4", "2", "2", False),  # source crashed -> excluded
        ok("p5", "4", "4", True),  # not in source -> not shared
    )
    r = source_to_target_agreement(source, target)
    # shared p1..p4 (4), compared p1..p3 (3), agree p1, p3 (2) -> 2/3, coverage 3/4.
    assert (r.agree, r.compared, r.total, r.agree_correct, r.agree_wrong) == (2, 3, 4, 1, 1)
    assert r.rate == pytest.approx(2 / 3) and r.coverage == pytest.approx(3 / 4)
    assert r.problems == ("p1", "p2", "p3")


def test_transfer_matrix_accuracy_and_source_agreement() -> None:
    # Two sources x two targets, two problems each.
    data = {
        "S1": {
            "T1": index(ok("p1", "1", "1", True), ok("p2", "2", "2", True)),  # accuracy 1.0
            "T2": index(ok("p1", "1", "1", True), ok("p2", "3", "3", False)),  # 0.5
        },
        "S2": {
            "T2": index(crashed("p1"), ok("p2", "2", "2", True)),  # 0.5 (crash = wrong); S2 never went to T1
        },
    }
    m = transfer_matrix(data)
    assert m.sources == ("S1", "S2") and m.targets == ("T1", "T2")
    assert m.cell("S1", "T1") == 1.0 and m.cell("S1", "T2") == 0.5 and m.cell("S2", "T2") == 0.5
    assert math.isnan(m.cell("S2", "T1")) and m.counts[1, 0] == 0
    assert m.to_dict() == {"S1": {"T1": 1.0, "T2": 0.5}, "S2": {"T2": 0.5}}
    with pytest.raises(KeyError):
        m.cell("S3", "T1")

    own = {
        "S1": index(ok("p1", "1", "1", True), ok("p2", "3", "3", False)),
        "S2": index(ok("p1", "7", "7", False), ok("p2", "9", "9", False)),
    }
    agr = transfer_matrix(data, metric="source_agreement", source_answers=own)
    # S1->T1: p1 agree, p2 2 vs 3 no -> 1/2. S1->T2: both agree -> 1. S2->T2: p1 crashed (excluded), p2 9 vs 2 -> 0/1.
    assert agr.cell("S1", "T1") == 0.5 and agr.cell("S1", "T2") == 1.0 and agr.cell("S2", "T2") == 0.0
    assert agr.counts.tolist() == [[2, 2], [0, 1]]
    with pytest.raises(ValueError, match="source_answers"):
        transfer_matrix(data, metric="source_agreement")


def test_self_consistency_by_hand() -> None:
    greedy = index(ok("p1", "5", "5", True), ok("p2", "8", "8", False), row("p3", "??"))
    s1 = index(ok("p1", "5", "5", True), ok("p2", "9", "9", False), ok("p3", "1", "1", False))
    s2 = index(ok("p1", "5.0", "5", True), ok("p2", "8", "8", False), ok("p3", "1", "1", False))
    r = self_consistency(greedy, [s1, s2])
    # greedy vs s1: p1 yes, p2 no (p3 greedy invalid) -> 1/2; vs s2: p1, p2 yes -> 2/2; pooled 3/4.
    assert [a.rate for a in r.per_sample] == [0.5, 1.0]
    assert r.greedy_agreement == pytest.approx(0.75) and r.coverage == pytest.approx(4 / 6)
    # s1 vs s2: p1 yes, p2 no, p3 yes -> 2/3.
    assert r.among_samples == pytest.approx(2 / 3) and r.among_samples_compared == 3
    assert r.n_samples == 2
    single = self_consistency(greedy, [s1])
    assert math.isnan(single.among_samples) and single.among_samples_compared == 0


def test_transitions_by_hand() -> None:
    empty = index(
        ok("p1", "1", "1", True),
        ok("p2", "2", "2", False),
        row("p3", "x"),
        ok("p4", "4", "4", True),
        ok("p5", "5", "5", False),
    )
    cond = index(
        ok("p1", "0", "0", False),  # correct -> wrong
        ok("p2", "1", "1", True),  # wrong -> correct
        ok("p3", "3", "3", True),  # invalid -> correct
        ok("p4", "4", "4", True),  # correct -> correct
        crashed("p5"),  # wrong -> invalid
        ok("p6", "6", "6", True),  # only in the condition: unmatched
    )
    t = transitions(empty, cond)
    assert t.counts[("correct", "wrong")] == 1 and t.counts[("wrong", "correct")] == 1
    assert t.counts[("invalid", "correct")] == 1 and t.counts[("correct", "correct")] == 1
    assert t.counts[("wrong", "invalid")] == 1
    assert len(t.counts) == 9 and t.total == 5 and t.unmatched == 1
    # Two-state view (invalid folded into wrong): w->c = (w,c) + (i,c) = 2; c->w = 1; c->c = 1; w->w = (w,i) = 1.
    assert (t.wrong_to_correct, t.correct_to_wrong, t.correct_to_correct, t.wrong_to_wrong) == (2, 1, 1, 1)


# ---------------------------------------------------------------------------------------------------------------
# Fleiss' kappa
# ---------------------------------------------------------------------------------------------------------------

# Wikipedia, "Fleiss' kappa", worked example: 10 items, 14 raters, 5 categories; P-bar = 0.378, P_e = 0.213,
# kappa = 0.210.
WIKIPEDIA_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example() -> None:
    items = [[cat for cat, n in zip("abcde", counts, strict=True) for _ in range(n)] for counts in WIKIPEDIA_COUNTS]
    r = fleiss_kappa(items)
    assert (r.n_items, r.n_raters, r.n_categories) == (10, 14, 5)
    assert r.observed == pytest.approx(0.378, abs=5e-4)
    assert r.expected == pytest.approx(0.213, abs=5e-4)
    assert r.kappa == pytest.approx(0.210, abs=5e-4)
    # The same with exact arithmetic.
    m, n = 14, 10
    p_bar = sum(Fraction(sum(c * c for c in row_) - m, m * (m - 1)) for row_ in WIKIPEDIA_COUNTS) / n
    p_e = sum(Fraction(sum(col), n * m) ** 2 for col in zip(*WIKIPEDIA_COUNTS, strict=True))
    assert r.kappa == pytest.approx(float((p_bar - p_e) / (1 - p_e)), rel=1e-12)
    assert fleiss_kappa_from_counts(WIKIPEDIA_COUNTS).kappa == pytest.approx(r.kappa)


def test_fleiss_kappa_small_cases_and_degenerate_inputs() -> None:
    # [a,a], [a,b], [b,b]: P_i = 1, 0, 1 -> P-bar 2/3; p_a = p_b = 1/2 -> P_e 1/2; kappa = (2/3 - 1/2)/(1/2) = 1/3.
    assert fleiss_kappa([["a", "a"], ["a", "b"], ["b", "b"]]).kappa == pytest.approx(1 / 3)
    assert fleiss_kappa([["a", "a"], ["b", "b"]]).kappa == 1.0  # perfect agreement, two categories
    # Every rating in one category: chance agreement is 1 and kappa is 0/0 -> nan (documented).
    single = fleiss_kappa([["x", "x", "x"], ["x", "x", "x"]])
    assert math.isnan(single.kappa) and single.observed == 1.0 and single.expected == 1.0
    # Systematic disagreement goes negative: [a,b], [a,b] -> P-bar 0, P_e 1/2 -> kappa -1.
    assert fleiss_kappa([["a", "b"], ["b", "a"]]).kappa == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([["a", "a"], ["a"]])
    with pytest.raises(ValueError, match="two raters"):
        fleiss_kappa([["a"], ["b"]])
    with pytest.raises(ValueError, match="at least one item"):
        fleiss_kappa([])


def test_condition_fleiss_kappa_uses_only_fully_valid_problems() -> None:
    r = condition_fleiss_kappa(FIXTURE)
    # Only p1 (5, 5, 6) and p2 (12, 12, 12) are valid for all three; p3, p4, p5 excluded.
    # P_1 = (2^2 + 1^2 - 3) / (3*2) = 1/3, P_2 = 1 -> P-bar 2/3; p = (2/6, 1/6, 3/6) -> P_e = 14/36 = 7/18;
    # kappa = (2/3 - 7/18) / (11/18) = 5/11.
    assert (r.n_items, r.excluded, r.n_categories) == (2, 3, 3)
    assert r.kappa == pytest.approx(5 / 11)


# ---------------------------------------------------------------------------------------------------------------
# Correlations
# ---------------------------------------------------------------------------------------------------------------

X5 = [1, 2, 3, 4, 5]
Y5 = [2, 4, 5, 4, 5]


def test_pearson_by_hand() -> None:
    # dx = -2..2, dy = (-2, 0, 1, 0, 1): sum dxdy = 6, sum dx^2 = 10, sum dy^2 = 6 -> r = 6 / sqrt(60).
    r = pearson(X5, Y5)
    assert r.value == pytest.approx(6 / math.sqrt(60)) and r.n == 5
    assert pearson([1, 2, 3], [2, 4, 6]).value == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]).value == pytest.approx(-1.0)


def test_spearman_with_ties_by_hand() -> None:
    # ranks y: 2 -> 1; 4, 4 -> 2.5; 5, 5 -> 4.5 => (1, 2.5, 4.5, 2.5, 4.5); dy = (-2, -.5, 1.5, -.5, 1.5):
    # sum dxdy = 4 + .5 + 0 - .5 + 3 = 7, sum dy^2 = 9 -> rho = 7 / sqrt(90).
    r = spearman(X5, Y5)
    assert r.value == pytest.approx(7 / math.sqrt(90)) and r.n == 5
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]).value == pytest.approx(1.0)  # monotone, not linear


def test_kendall_tau_b_with_ties_by_hand() -> None:
    # 10 pairs; x has no ties. By y: concordant 7, discordant 1 ((3,4): 5 > 4), tied in y 2 ((2,4), (3,5)).
    # tau_b = (7 - 1) / sqrt(10 * (10 - 2)) = 6 / sqrt(80).
    r = kendall_tau_b(X5, Y5)
    assert r.value == pytest.approx(6 / math.sqrt(80)) and r.n == 5
    # Ties on both sides: x = (1,1,2,3), y = (1,2,2,3). Pairs: (1,2) tie x; (1,3) C; (1,4) C; (2,3) tie y;
    # (2,4) C; (3,4) C -> C = 4, D = 0, n0 = 6, ties_x = 1, ties_y = 1 -> 4 / sqrt(5 * 5) = 0.8.
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]).value == pytest.approx(0.8)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]).value == pytest.approx(-1.0)


def test_correlations_degenerate_and_nan_handling() -> None:
    for f in (pearson, spearman, kendall_tau_b):
        assert math.isnan(f([1, 1, 1], [1, 2, 3]).value)  # constant variable
        assert math.isnan(f([1], [2]).value) and f([1], [2]).n == 1
        dropped = f([1, 2, float("nan"), 3], [1, 2, 5, 3])
        assert dropped.n == 3 and dropped.value == pytest.approx(1.0)
        with pytest.raises(ValueError, match="differ in length"):
            f([1, 2], [1, 2, 3])


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------------------


def test_bootstrap_ci_is_deterministic_and_contains_the_estimate() -> None:
    values = np.random.default_rng(1).random(60)
    a = bootstrap_ci(values, seed=7)
    b = bootstrap_ci(values, seed=7)
    assert a == b
    assert bootstrap_ci(values, seed=8) != a
    assert a.estimate == pytest.approx(values.mean())
    assert a.low <= a.estimate <= a.high and a.n == 60 and a.n_valid == 2000
    # The standard error of a mean of U(0,1) over 60 draws is about 0.29 / sqrt(60) = 0.037.
    assert 0.02 < a.std_error < 0.06
    const = bootstrap_ci([0.5] * 10)
    assert const.low == const.high == const.estimate == 0.5


def test_bootstrap_ci_statistic_without_axis_falls_back_per_resample() -> None:
    values = np.arange(20.0)
    vectorized = bootstrap_ci(values, statistic=np.min, n_resamples=300, seed=3)
    per_resample = bootstrap_ci(values, statistic=lambda s: min(s), n_resamples=300, seed=3)
    assert (vectorized.low, vectorized.high, vectorized.estimate) == (per_resample.low, per_resample.high, 0.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.0)


def _single_problem_flags(data: ConditionData, pid: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(consistent, compared) per pair for one problem, via the public metric on a one-problem condition."""
    sub = {e: {pid: rows[pid]} if pid in rows else {} for e, rows in data.items()}
    return {(p.a, p.b): (p.consistent, p.compared) for p in paper_consistency(sub).pairs}


def test_consistency_ci_matches_a_naive_resampling_loop() -> None:
    r = consistency_ci(FIXTURE, metric="paper", n_resamples=200, seed=5)
    assert r.estimate == pytest.approx(paper_consistency(FIXTURE).mean)
    assert r.low <= r.estimate <= r.high
    assert consistency_ci(FIXTURE, metric="paper", n_resamples=200, seed=5) == r
    # Naive: the same draws of problem ids (same generator, same call), C_ab recomputed by summing per-problem
    # flags over the draws, mean over the pairs that compared something.
    ids = sorted({pid for rows in FIXTURE.values() for pid in rows})
    flags = {pid: _single_problem_flags(FIXTURE, pid) for pid in ids}
    draws = np.random.default_rng(5).integers(0, len(ids), size=(200, len(ids)))
    stats = []
    for d in draws:
        rates = []
        for pair in flags[ids[0]]:
            cons = sum(flags[ids[j]][pair][0] for j in d)
            comp = sum(flags[ids[j]][pair][1] for j in d)
            if comp:
                rates.append(cons / comp)
        stats.append(sum(rates) / len(rates) if rates else math.nan)
    finite = [s for s in stats if not math.isnan(s)]
    low, high = np.quantile(finite, [0.025, 0.975])
    assert (r.low, r.high) == (pytest.approx(low), pytest.approx(high))
    assert r.n_valid == len(finite)


def test_consistency_ci_strict_estimate() -> None:
    r = consistency_ci(FIXTURE, metric="strict", n_resamples=100)
    assert r.estimate == pytest.approx(11 / 18)
    with pytest.raises(ValueError, match="metric"):
        consistency_ci(FIXTURE, metric="other", n_resamples=10)  # type: ignore[arg-type]


def _random_condition(seed: int, n_eval: int, n_prob: int, p_agree: float) -> dict[str, dict[str, AnswerRow]]:
    rng = random.Random(seed)
    gold = {f"q{i:03d}": str(rng.randint(0, 9)) for i in range(n_prob)}
    out: dict[str, dict[str, AnswerRow]] = {}
    for e in range(n_eval):
        rows = {}
        for pid, g in gold.items():
            v = g if rng.random() < p_agree else str(rng.randint(10, 12))
            rows[pid] = ok(pid, v, v, v == g)
        out[f"E{e}"] = rows
    return out


def test_paired_bootstrap() -> None:
    x = _random_condition(1, 4, 80, 0.9)
    same = paired_bootstrap(x, x, n_resamples=300)
    assert same.difference == 0.0 and same.low == same.high == 0.0
    assert same.p_x_greater == 0.0 and same.p_tie == 1.0
    y = _random_condition(2, 4, 80, 0.3)
    r = paired_bootstrap(x, y, n_resamples=500, seed=11)
    assert r.estimate_x == pytest.approx(paper_consistency(x).mean)
    assert r.estimate_y == pytest.approx(paper_consistency(y).mean)
    assert r.difference > 0.3 and r.low > 0 and r.p_x_greater == 1.0
    assert paired_bootstrap(x, y, n_resamples=500, seed=11) == r
    flipped = paired_bootstrap(y, x, n_resamples=500, seed=11)
    assert flipped.difference == pytest.approx(-r.difference) and flipped.p_x_greater == 0.0


def test_bootstrap_is_fast() -> None:
    data = _random_condition(3, 5, 100, 0.6)  # 100 problems x 10 pairs
    start = time.perf_counter()
    consistency_ci(data, n_resamples=2000)
    paired_bootstrap(data, _random_condition(4, 5, 100, 0.5), n_resamples=2000)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"bootstrap took {elapsed:.2f}s"


# ---------------------------------------------------------------------------------------------------------------
# Human ratings
# ---------------------------------------------------------------------------------------------------------------

RATINGS_HEADER = "participant_id,original_row,original_col,group,model,criterion,value,model_label\n"


def _rating_line(pid: int, colour: str, item: int, criterion: str, value: str, label: str) -> str:
    col = f'"{colour}-{item} - {criterion}: text, with a comma"'
    return f"{pid},{pid},{col},{colour}_{criterion},{colour},{criterion},{value},{label}\n"


def test_parse_ratings_csv_small() -> None:
    text = RATINGS_HEADER + "".join(
        [
            _rating_line(1, "orange-model", 185, "Clarity of Steps", "2.0", "OSS"),
            _rating_line(2, "orange-model", 185, "Confidence", "4.0", "OSS"),
            _rating_line(1, "blue-model", 79, "Clarity of Steps", "5.0", "DAPO"),
            _rating_line(2, "blue-model", 79, "Clarity of Steps", "", "DAPO"),  # skipped question
            '3,3,"best-overall-79 - <span style=""color:#2980b9;"">Blue Model</span>",'
            "b,blue-model,best-overall,5.0,DAPO\n",
        ]
    )
    rows = parse_ratings_csv(text)
    assert len(rows) == 4
    assert rows[0].item == "185" and rows[0].model == "orange-model" and rows[0].value == 2.0
    assert rows[3].item == "79" and rows[3].criterion == "best-overall"
    # Default criteria are the Likert ones (best-overall is a rank): OSS (2 + 4) / 2 = 3, DAPO 5.
    assert mean_ratings(rows) == {"OSS": 3.0, "DAPO": 5.0}
    assert mean_ratings(rows, "best-overall") == {"DAPO": 5.0}
    assert mean_ratings(rows, ["Confidence"]) == {"OSS": 4.0}
    with pytest.raises(ValueError, match="not a number"):
        parse_ratings_csv(RATINGS_HEADER + _rating_line(1, "orange-model", 185, "Confidence", "high", "OSS"))
    with pytest.raises(ValueError, match="lacks columns"):
        parse_ratings_csv("participant_id,value\n1,2\n")


def test_human_rating_correlation_small() -> None:
    text = RATINGS_HEADER + "".join(
        _rating_line(1, c, 1, "Confidence", v, lab)
        for c, v, lab in [("a", "1", "L1"), ("b", "2", "L2"), ("c", "4", "L3"), ("d", "3", "L4")]
    )
    rows = parse_ratings_csv(text)
    consistency = {"c1": 0.1, "c2": 0.2, "c3": 0.3, "c4": 0.4}
    r = human_rating_correlation(consistency, rows, {"L1": "c1", "L2": "c2", "L3": "c3", "L4": "c4"})
    # ratings (1, 2, 4, 3) vs (.1, .2, .3, .4): Spearman ranks differ by one swap: 1 - 6*2/(4*15) = 0.8;
    # Kendall: 6 pairs, 5 concordant, 1 discordant -> 4/6. Pearson: dx = (-1.5,-.5,.5,1.5) (x10),
    # dy = (-1.5,-.5,1.5,.5): sum dxdy = 2.25+.25+.75+.75 = 4, sums of squares 5 and 5 -> 0.8.
    assert r.n == 4 and r.labels == ("L1", "L2", "L3", "L4")
    assert r.pearson.value == pytest.approx(0.8) and r.pearson.n == 4
    assert r.spearman.value == pytest.approx(0.8)
    assert r.kendall.value == pytest.approx(4 / 6)
    with pytest.raises(KeyError, match="no ratings"):
        human_rating_correlation(consistency, rows, {"L9": "c1"})
    with pytest.raises(KeyError, match="no consistency"):
        human_rating_correlation(consistency, rows, {"L1": "c9"})


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------

VALUES = ["1", "2", "3"]
# Raw spellings per value: two strings can share a value, so raw and normalized comparison differ.
SPELLINGS = {"1": ["1", "1.0"], "2": ["2"], "3": ["3", "03"]}


@st.composite
def conditions(draw: st.DrawFn, canonical: bool = False, all_valid: bool = False) -> dict[str, dict[str, AnswerRow]]:
    """2-4 evaluators, 1-6 problems; answers may crash, be unparseable or carry an error marker (unless asked not)."""
    n_eval = draw(st.integers(2, 4))
    pids = [f"p{i}" for i in range(draw(st.integers(1, 6)))]
    # Correctness is a function of the value: each problem has a set of accepted values (tolerance ranges can
    # accept two different values).
    accepted = {pid: set(draw(st.lists(st.sampled_from(VALUES), max_size=2))) for pid in pids}
    kinds = ["value"] if all_valid else ["value", "value", "value", "crash", "junk", "marker"]
    data: dict[str, dict[str, AnswerRow]] = {}
    for e in range(n_eval):
        rows: dict[str, AnswerRow] = {}
        for pid in draw(st.permutations(pids)):  # any insertion order
            if draw(st.booleans()) and not all_valid and draw(st.booleans()):
                continue  # missing for this evaluator
            kind = draw(st.sampled_from(kinds))
            if kind == "crash":
                rows[pid] = crashed(pid)
            elif kind == "junk":
                rows[pid] = row(pid, "abc")
            elif kind == "marker":
                rows[pid] = row(pid, "name 'N' is not defined")
            else:
                v = draw(st.sampled_from(VALUES))
                spelled = v if canonical else draw(st.sampled_from(SPELLINGS[v]))
                rows[pid] = ok(pid, spelled, v, v in accepted[pid])
        data[f"E{e}"] = rows
    return data


@settings(max_examples=150, deadline=None)
@given(conditions())
def test_property_consistency_bounded_symmetric_and_order_free(data: dict[str, dict[str, AnswerRow]]) -> None:
    for metric in (paper_consistency, strict_consistency):
        r = metric(data)
        for p in r.pairs:
            assert 0 <= p.consistent_correct <= p.consistent <= p.compared <= p.total
            assert p.consistent_correct + p.consistent_wrong + p.inconsistent == p.compared
            assert math.isnan(p.value) or 0.0 <= p.value <= 1.0
        assert math.isnan(r.mean) or 0.0 <= r.mean <= 1.0
        assert math.isnan(r.coverage) or 0.0 <= r.coverage <= 1.0
        # Reversing the evaluators and every evaluator's row order changes nothing.
        rev = {e: dict(reversed(list(rows.items()))) for e, rows in reversed(list(data.items()))}
        r2 = metric(rev)
        assert (math.isnan(r.mean) and math.isnan(r2.mean)) or r2.mean == pytest.approx(r.mean)
        assert (math.isnan(r.std) and math.isnan(r2.std)) or r2.std == pytest.approx(r.std)
        for p in r.pairs:
            q = r2.pair(p.a, p.b)
            assert (q.consistent, q.compared, q.total, q.problems) == (p.consistent, p.compared, p.total, p.problems)


@settings(max_examples=150, deadline=None)
@given(conditions(canonical=True, all_valid=True))
def test_property_strict_never_exceeds_paper_on_clean_canonical_answers(data: dict[str, dict[str, AnswerRow]]) -> None:
    # With every answer valid, no error marker, and answers already written canonically (answer == normalized),
    # both metrics compare the same problems; strict agreement implies identical strings, so strict <= paper,
    # and the gap is exactly the "both correct, different values" problems.
    paper, strict = paper_consistency(data), strict_consistency(data)
    for p in paper.pairs:
        s = strict.pair(p.a, p.b)
        assert s.compared == p.compared == p.total
        assert s.consistent <= p.consistent
        both_correct_different = sum(
            1
            for pid in p.problems
            if data[p.a][pid].correct
            and data[p.b][pid].correct
            and data[p.a][pid].normalized != data[p.b][pid].normalized
        )
        assert p.consistent - s.consistent == both_correct_different
    assert strict.mean <= paper.mean + 1e-12


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=2, max_size=25),
)
def test_property_correlations(points: list[tuple[int, int]]) -> None:
    x = [p[0] for p in points]
    y = [p[1] for p in points]
    for f in (pearson, spearman, kendall_tau_b):
        r = f(x, y)
        assert r.n == len(points)
        assert math.isnan(r.value) or -1.0 <= r.value <= 1.0
        back = f(y, x)
        assert (math.isnan(r.value) and math.isnan(back.value)) or back.value == pytest.approx(r.value)
    # Rank correlations ignore strictly increasing transforms.
    cubed = [v**3 + 7 for v in x]
    for f in (spearman, kendall_tau_b):
        a, b = f(x, y).value, f(cubed, y).value
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda m: st.lists(st.lists(st.sampled_from("abc"), min_size=m + 1, max_size=m + 1), min_size=1, max_size=8)
    )
)
def test_property_fleiss_kappa_at_most_one(items: list[list[str]]) -> None:
    r = fleiss_kappa(items)
    assert math.isnan(r.kappa) == (r.n_categories == 1)
    assert math.isnan(r.kappa) or r.kappa <= 1.0 + 1e-12
    assert 0.0 <= r.observed <= 1.0 and 0.0 < r.expected <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# The paper's released data (skipped without ../shared/data)
# ---------------------------------------------------------------------------------------------------------------

needs_user_study = pytest.mark.skipif(
    not (USER_STUDY / "expanded_data_all_rows.csv").is_file(),
    reason=f"the paper's user-study data is not at {USER_STUDY} (only present beside the development checkout)",
)
needs_outputs = pytest.mark.skipif(
    not OUTPUTS.is_dir(),
    reason=f"the paper's released outputs are not at {OUTPUTS} (only present beside the development checkout)",
)


@needs_user_study
def test_real_user_study_ratings_parse_and_match_the_authors_means() -> None:
    rows = load_ratings(USER_STUDY / "expanded_data_all_rows.csv")
    assert len(rows) == 1199
    assert len({r.participant_id for r in rows}) == 15
    assert len({r.item for r in rows}) == 10
    assert {r.model_label for r in rows} == {"OSS", "DAPO", "QwQ+DAPO/OSS", "QwQ+OSS/DAPO"}
    assert {r.criterion for r in rows} == {*LIKERT_CRITERIA, "best-overall"}
    assert all(1.0 <= r.value <= 5.0 for r in rows)
    # The authors' own table lists each label's mean per criterion; ours must agree.
    table = (USER_STUDY / "statistical_tests_all_rows.csv").read_text(encoding="utf-8")
    checked = 0
    for rec in csv.DictReader(io.StringIO(table)):
        means = mean_ratings(rows, rec["criterion"])
        assert means[rec["model1_label"]] == pytest.approx(float(rec["model1_mean"]))
        assert means[rec["model2_label"]] == pytest.approx(float(rec["model2_mean"]))
        checked += 1
    assert checked == 24

    consistency = {"oss": 0.40, "dapo": 0.55, "qwq_dapo_oss": 0.65, "qwq_oss_dapo": 0.45}  # illustrative values
    labels = {"OSS": "oss", "DAPO": "dapo", "QwQ+DAPO/OSS": "qwq_dapo_oss", "QwQ+OSS/DAPO": "qwq_oss_dapo"}
    r = human_rating_correlation(consistency, rows, labels)
    assert r.n == 4 and r.pearson.n == 4
    # Likert means order OSS < QwQ+OSS/DAPO < DAPO < QwQ+DAPO/OSS, the same order as these consistencies.
    assert r.spearman.value == pytest.approx(1.0) and r.kendall.value == pytest.approx(1.0)
    assert r.pearson.value == pytest.approx(pearson(r.consistency, r.ratings).value)


def _load_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@needs_outputs
def test_real_transfer_outputs_paper_metric_equals_the_reference_loop_by_position() -> None:
    # The QwQ-sourced transfers to the paper's five evaluators (several rows crashed, several carry markers).
    targets = [
        "nvidia_Nemotron-Research-Reasoning-Qwen-1.5B",
        "open-thoughts_OpenThinker-7B",
        "openai_gpt-oss-20b",
        "Qwen_QwQ-32B",
        "BytedTsinghua-SIA_DAPO-Qwen-32B",
    ]
    files = {t: OUTPUTS / f"Qwen_QwQ-32B_thoughts_to_{t}_zero_shot_without_answer.jsonl" for t in targets}
    if not all(p.is_file() for p in files.values()):
        pytest.skip("the QwQ transfer outputs are incomplete")
    raw = {t: _load_jsonl(p) for t, p in files.items()}

    # The reference computation, by file position, missing answers read as "".
    def ref_pair(xs: list[dict[str, object]], ys: list[dict[str, object]]) -> float:
        consistent = compared = 0
        for dx, dy in zip(xs, ys, strict=True):
            ax, ay = str(dx.get("Target Answer", "")), str(dy.get("Target Answer", ""))
            if any(m in ax or m in ay for m in ("not defined", "N/A", "does not match", "are not permitted")):
                continue
            compared += 1
            consistent += ax == ay or (dx.get("Target Result") == "Correct" and dy.get("Target Result") == "Correct")
        return consistent / compared

    ref = [ref_pair(raw[a], raw[b]) for i, a in enumerate(targets) for b in targets[i + 1 :]]

    # Ours, keyed by Row Number, each file shuffled.
    rng = random.Random(0)
    data: dict[str, Mapping[str, AnswerRow]] = {}
    for t, recs in raw.items():
        recs = recs[:]
        rng.shuffle(recs)
        data[t] = rows_by_id(
            AnswerRow(
                str(d["Row Number"]),
                None if "Target Answer" not in d else str(d["Target Answer"]),
                None,
                None if "Target Answer" not in d else d.get("Target Result") == "Correct",
            )
            for d in recs
        )
    assert sum(r.crashed for rows in data.values() for r in rows.values()) > 0
    r = paper_consistency(data)
    assert [p.value for p in r.pairs] == pytest.approx(ref)
    assert r.mean == pytest.approx(float(np.mean(ref))) and r.std == pytest.approx(float(np.std(ref)))
