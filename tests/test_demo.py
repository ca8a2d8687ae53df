"""`cotbridge demo`: its reading of a report (on hand-built reports) and the demo itself on the embedded models."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cotbridge.analysis.reading import reading_lines
from cotbridge.analysis.report import ConditionSummary, Report, build_report
from cotbridge.datasets.loader import load_dataset
from cotbridge.study.results import ResultsDB
from tests.conftest import REPO


def _row(
    name: str, variant: str, mean: float, *, pairs: int = 1, problems: int = 8, ci: float = 0.25
) -> ConditionSummary:
    nan = math.nan
    return ConditionSummary(
        name=name,
        variant=variant,
        metric="strict",
        mean=mean,
        std=0.0,
        pairs=pairs,
        ci_low=mean - ci if pairs else nan,
        ci_high=mean + ci if pairs else nan,
        coverage=1.0,
        consistent_correct=nan,
        consistent_wrong=nan,
        inconsistent=nan,
        evaluators=2,
        problems=problems,
    )


def _report(transfer: float, transfer_accuracy: float, removed_accuracy: float = 0.25) -> Report:
    """A report with empty, default and two transfer sources, whose transfer numbers the caller sets."""
    report = Report(study="demo", metric="strict")
    report.conditions = [
        _row("empty", "full", 0.5),
        _row("default", "full", 0.25, ci=0.4),
        _row("transfer:a", "full", transfer),
        _row("transfer:b", "full", transfer),
        _row("transfer:a", "without_answer", 0.125),
        _row("transfer:b", "without_answer", 0.125),
    ]
    report.accuracy = {
        "empty/full": {"a": 0.0, "b": 0.25},
        "default/full": {"a": 0.5, "b": 0.25},
        "transfer:a/full": {"a": transfer_accuracy, "b": transfer_accuracy},
        "transfer:b/full": {"a": transfer_accuracy, "b": transfer_accuracy},
        "transfer:a/without_answer": {"a": removed_accuracy, "b": removed_accuracy},
        "transfer:b/without_answer": {"a": removed_accuracy, "b": removed_accuracy},
    }
    return report


def test_the_reading_names_the_conditions_that_agreed_most_and_least() -> None:
    lines = reading_lines(_report(transfer=0.875, transfer_accuracy=0.625), models="two tiny models")
    assert 3 <= len(lines) <= 5
    assert lines[0] == (
        "Agreement (strict consistency) was highest under transfer:a with the full CoT (0.875) and lowest under "
        "transfer:a with the answer removed (0.125)."
    )
    assert lines[1] == (
        "Transfer (mean of its 2 sources) against the evaluator's own CoT (default): agreement rose from 0.250 to "
        "0.875; accuracy rose from 0.375 to 0.625."
    )
    assert lines[2] == (
        "Transfer (mean of its 2 sources) against no CoT (empty): agreement rose from 0.500 to 0.875; accuracy rose "
        "from 0.125 to 0.625; with the answer sentences removed, transfer accuracy fell from 0.625 to 0.250."
    )
    assert "Most accurate evaluator: a," in lines[3]  # a tie with b (0.375 each): the first by name
    assert lines[4].startswith(
        "Caveat: 8 problems and 2 evaluators of two tiny models: one problem moves a rate by 0.125"
    )
    assert "up to 0.80 wide" in lines[4]


def test_transfer_below_the_own_cot_reads_as_a_fall() -> None:
    lines = reading_lines(_report(transfer=0.125, transfer_accuracy=0.125, removed_accuracy=0.125))
    assert "agreement fell from 0.250 to 0.125; accuracy fell from 0.375 to 0.125" in lines[1]
    assert "agreement fell from 0.500 to 0.125; accuracy stayed at 0.125" in lines[2]
    assert "transfer accuracy stayed at 0.125" in lines[2]
    assert lines[0].startswith("Agreement (strict consistency) was highest under empty (no CoT) (0.500)")


def test_the_best_evaluator_follows_the_numbers() -> None:
    report = _report(transfer=0.5, transfer_accuracy=0.5)
    report.accuracy["default/full"] = {"a": 0.0, "b": 1.0}
    best = next(line for line in reading_lines(report) if line.startswith("Most accurate"))
    assert best.startswith("Most accurate evaluator: b,")
    assert "its best was 1.000, under default with the full CoT" in best


def test_a_report_without_pairs_or_transfer_says_what_is_missing() -> None:
    report = Report(study="s", metric="paper")
    report.conditions = [_row("empty", "full", math.nan, pairs=0), _row("default", "full", math.nan, pairs=0)]
    lines = reading_lines(report)
    assert lines[0].startswith("No condition had two evaluators with valid answers")
    assert not any(line.startswith("Transfer") for line in lines)
    assert lines[-1].startswith("Caveat: 8 problems")


def test_the_demo_problems_show_worked_examples_then_the_question() -> None:
    problems = load_dataset("builtin:one-step")
    assert len(problems) == 16 and len({p.id for p in problems}) == 16
    first = problems[0]
    assert [m["role"] for m in first.prompt] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert first.question.startswith("Anna has 3 apples") and first.gold == 7
    assert first.prompt[2]["content"].endswith("\n</think>\n\nAnswer: 7")
    assert first.check("Answer: 7").correct is True and first.check("Answer: 8").correct is False


@pytest.mark.slow
def test_the_demo_shows_accuracy_and_pairs_in_every_condition(tmp_path: Path) -> None:
    """The real demo, cold then warm: some evaluator is right sometimes, every condition has a pair to compare,
    conditions differ, the reading and the explorer command are printed, and the rerun comes from the cache."""
    from tests.conftest import _have_local_model

    if _have_local_model():
        pytest.skip(_have_local_model() or "")
    db = tmp_path / "demo.db"
    env = {**os.environ, "COLUMNS": "120"}
    command = [sys.executable, "-m", "cotbridge.cli", "demo", "--db", str(db)]
    cold = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert cold.returncode == 0, cold.stdout[-2000:] + cold.stderr[-2000:]
    results = ResultsDB(db, read_only=True)
    try:
        report = build_report(results, "demo", "strict")
    finally:
        results.close()
    assert len(report.conditions) == 11  # empty, and default, sampled, 2 transfer, ensemble in both variants
    assert all(row.pairs > 0 for row in report.conditions), [(r.name, r.variant) for r in report.conditions]
    assert max(acc for per in report.accuracy.values() for acc in per.values()) > 0
    means = [row.mean for row in report.conditions]
    assert max(means) - min(means) > 0.1, means
    truncated = sum(report.truncated.values())
    assert truncated <= 6, report.truncated  # of 132 trials
    assert "What this run says" in cold.stdout and "Agreement (strict consistency) was highest" in cold.stdout
    assert f"cotbridge report {db} --format html" in cold.stdout.replace("\n", "")
    started = time.monotonic()
    warm = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert warm.returncode == 0 and "0 trial(s) run" in warm.stdout, warm.stdout[-2000:]
    assert time.monotonic() - started < 60
