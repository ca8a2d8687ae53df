"""A short reading of a report in plain words: which condition agreed most and least, what a transferred CoT changed
against the model's own CoT and against none, the best evaluator's accuracy, and how far the numbers can be trusted.

Pure: a `Report` in, a few lines of text out (no I/O, no printing); `cotbridge demo` prints them under its tables.
Agreement is the report's consistency (mean over evaluator pairs, by the report's metric); accuracy is the mean over
evaluators of each one's share of correct answers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from cotbridge.analysis.report import ConditionSummary, Report

_VARIANT_WORDS = {"full": "full CoT", "without_answer": "answer removed"}  # read as "with the ..."

# Below this a difference of two rates is read as none (the rates are printed to three decimals).
_SAME = 0.0005


@dataclass(frozen=True, slots=True)
class _Group:
    """One condition kind in one variant (all transfer sources pooled): mean agreement and mean accuracy."""

    agreement: float
    accuracy: float
    rows: int


def _kind(name: str) -> str:
    """`transfer:gemma3` -> `transfer`, `sampled#1` -> `sampled`."""
    return name.partition(":")[0].partition("#")[0]


def _where(name: str, variant: str) -> str:
    """`default with the full CoT`, `transfer:gemma3 with the answer removed`, `empty (no CoT)`."""
    if _kind(name) == "empty":
        return "empty (no CoT)"
    return f"{name} with the {_VARIANT_WORDS.get(variant, variant)}"


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _row_accuracy(report: Report, row: ConditionSummary) -> float:
    return _mean(list(report.accuracy.get(f"{row.name}/{row.variant}", {}).values()))


def _groups(report: Report) -> dict[tuple[str, str], _Group]:
    """(condition kind, variant) -> its rows' agreement and accuracy, averaged over the rows that have them."""
    rows: dict[tuple[str, str], list[ConditionSummary]] = defaultdict(list)
    for row in report.conditions:
        rows[(_kind(row.name), row.variant)].append(row)
    return {
        key: _Group(
            agreement=_mean([r.mean for r in members if r.pairs]),
            accuracy=_mean([_row_accuracy(report, r) for r in members]),
            rows=len(members),
        )
        for key, members in rows.items()
    }


def _compare(what: str, new: float, old: float) -> str:
    """`agreement rose from 0.500 to 0.625`, `... fell ...`, `... stayed at ...`; `... could not be compared`."""
    if math.isnan(new) or math.isnan(old):
        return f"{what} could not be compared (no valid pair)"
    if abs(new - old) < _SAME:
        return f"{what} stayed at {new:.3f}"
    verb = "rose" if new > old else "fell"
    return f"{what} {verb} from {old:.3f} to {new:.3f}"


def _extremes(report: Report) -> str:
    compared = [r for r in report.conditions if r.pairs and not math.isnan(r.mean)]
    if not compared:
        return (
            "No condition had two evaluators with valid answers on the same problem, so agreement could not be "
            "measured; look at the invalid answers and truncated trials above."
        )
    most = max(compared, key=lambda r: r.mean)
    least = min(compared, key=lambda r: r.mean)
    if most.mean - least.mean < _SAME:
        return f"Every condition agreed equally ({most.mean:.3f}, {report.metric} consistency)."
    return (
        f"Agreement ({report.metric} consistency) was highest under {_where(most.name, most.variant)} "
        f"({most.mean:.3f}) and lowest under {_where(least.name, least.variant)} ({least.mean:.3f})."
    )


def _transfer_against(groups: dict[tuple[str, str], _Group], baseline: str, words: str) -> str | None:
    """Transfer with the full CoT against a baseline condition: agreement and accuracy, each with its direction."""
    transfer = groups.get(("transfer", "full"))
    other = groups.get((baseline, "full"))
    if transfer is None or other is None:
        return None
    pooled = f" (mean of its {transfer.rows} sources)" if transfer.rows > 1 else ""
    agreement = _compare("agreement", transfer.agreement, other.agreement)
    accuracy = _compare("accuracy", transfer.accuracy, other.accuracy)
    return f"Transfer{pooled} against {words} ({baseline}): {agreement}; {accuracy}"


def _removal(groups: dict[tuple[str, str], _Group]) -> str | None:
    """What removing the answer sentences did to the transferred CoTs, as a clause."""
    full, removed = groups.get(("transfer", "full")), groups.get(("transfer", "without_answer"))
    if full is None or removed is None:
        return None
    return f"with the answer sentences removed, transfer {_compare('accuracy', removed.accuracy, full.accuracy)}"


def _best_evaluator(report: Report) -> str | None:
    per: dict[str, list[float]] = defaultdict(list)
    for by_evaluator in report.accuracy.values():
        for evaluator, value in by_evaluator.items():
            per[evaluator].append(value)
    means = {evaluator: _mean(values) for evaluator, values in per.items()}
    means = {evaluator: value for evaluator, value in means.items() if not math.isnan(value)}
    if not means:
        return None
    best = max(sorted(means), key=lambda e: means[e])
    rows = {label: by[best] for label, by in report.accuracy.items() if best in by and not math.isnan(by[best])}
    top = max(rows, key=lambda label: rows[label])
    label, _, variant = top.rpartition("/")
    return (
        f"Most accurate evaluator: {best}, {means[best]:.3f} averaged over {len(rows)} condition rows; its best was "
        f"{rows[top]:.3f}, under {_where(label, variant)}."
    )


def _caveat(report: Report, models: str) -> str:
    problems = max((r.problems for r in report.conditions), default=0)
    evaluators = max((r.evaluators for r in report.conditions), default=0)
    widths = [r.ci_high - r.ci_low for r in report.conditions if r.pairs and not math.isnan(r.ci_high - r.ci_low)]
    step = f"one problem moves a rate by {1 / problems:.3f}" if problems else "no problem was answered"
    spread = f"; the 95% CIs are up to {max(widths):.2f} wide" if widths else ""
    who = f" of {models}" if models else ""
    return (
        f"Caveat: {problems} problems and {evaluators} evaluators{who}: {step}{spread}. Read this as a walk-through "
        "of the method, not as evidence about CoT transfer."
    )


def reading_lines(report: Report, *, models: str = "") -> list[str]:
    """A few plain-text lines that read `report`: which condition agreed most and least (with numbers), what transfer
    changed against the model's own CoT (default) and against none (empty), the best evaluator's accuracy, and a
    caveat with the number of problems and evaluators. `models` names the models for the caveat ("two tiny local
    models"). Lines whose conditions the study did not run are left out."""
    groups = _groups(report)
    lines = [_extremes(report)]
    own = _transfer_against(groups, "default", "the evaluator's own CoT")
    if own is not None:
        lines.append(own + ".")
    none = _transfer_against(groups, "empty", "no CoT")
    removal = _removal(groups)
    if none is not None:
        lines.append(none + (f"; {removal}." if removal else "."))
    elif removal is not None:
        lines.append(removal[0].upper() + removal[1:] + ".")
    best = _best_evaluator(report)
    if best is not None:
        lines.append(best)
    lines.append(_caveat(report, models))
    return lines
