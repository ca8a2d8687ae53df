"""The HTML explorer: one self-contained page from a results DB, with charts and a drill-down to every CoT.

`explorer_page(results, report)` writes the numbers of a `Report` (built by `cotbridge.analysis.report`, never
recomputed here) and the rows behind them (trials and CoTs from the results DB) into one HTML file that opens from
disk: the script, the styles and the data are inline and the page's Content-Security-Policy forbids every request.

Keeping the file small: every text (CoTs, answer texts, answers, names) is stored once in a string table and
referred to by index; the data is JSON, gzip-compressed and base64-encoded, and the page decodes it with the
browser's native `DecompressionStream`. The paper's release (8,500 trials, 1,500 stored CoTs) makes a page of about
2 MB. CoT texts are only turned into DOM nodes when a problem is opened; long lists are rendered a page at a time.

Charts are plain inline SVG drawn by the page's own small script (`explorer_assets/explorer.js`): the three charts
(dots with CI whiskers, two heatmaps) need about 150 lines, while an inlined charting library would add 200 KB to
1 MB to every report, plus a dependency to keep up to date and audit; SVG also keeps text selectable and the
charts readable in a screenshot.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from importlib import resources
from typing import Any

from cotbridge.analysis.metrics import AnswerRow, _paper_judge, _strict_judge
from cotbridge.analysis.report import (
    ACCURACY_DEFINITION,
    BREAKDOWN_DEFINITION,
    METRIC_DEFINITIONS,
    ConditionKey,
    Report,
)
from cotbridge.cot.sentences import sentence_spans
from cotbridge.records import Condition
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow

# Beyond this many trials the evaluators' answer texts stay out of the page (answers and scores stay in), so that a
# very large study still makes a page a browser opens; CoTs are always in.
MAX_ANSWER_TEXTS = 100_000
# Which stored CoT a trial of each condition was given (kind, in order of preference); empty gives none.
_COT_KINDS = {
    Condition.DEFAULT: ("greedy", "default"),
    Condition.SAMPLED: ("sampled",),
    Condition.TRANSFER: ("greedy", "default"),
    Condition.ENSEMBLE: ("ensemble",),
}
# The most alternatives an ensemble step keeps in the page (the chosen sentence is always there).
_ALTERNATIVES = 3
_ALTERNATIVE_CHARS = 300
_JUDGES = {"paper": _paper_judge, "strict": _strict_judge}


class _Strings:
    """A string table: each distinct text is stored once in the page and referred to by its index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, text: str | None) -> int | None:
        if text is None:
            return None
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.items)
            self.items.append(text)
        return found


def _finite(value: Any) -> Any:
    """JSON the browser can parse: NaN and infinities (bootstrap edges, -inf scores) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _agreement(rows: list[AnswerRow], metric: str) -> int:
    """A problem's agreement among a condition's evaluators by the report's metric: 1 every compared pair agrees,
    0 some pair disagrees, -1 no pair could be compared (fewer than two answers, or invalid ones)."""
    judge = _JUDGES[metric]
    compared = agreed = 0
    for i, x in enumerate(rows):
        for y in rows[i + 1 :]:
            was_compared, consistent, _ = judge(x, y)
            compared += was_compared
            agreed += was_compared and consistent
    if not compared:
        return -1
    return int(agreed == compared)


def _answer_row(t: TrialRow) -> AnswerRow:
    # The report's one invalid-answer policy (report.gather): a truncated trial is an invalid answer.
    if t.truncated:
        return AnswerRow(t.problem_id, None, None, None)
    return AnswerRow(t.problem_id, t.answer, t.normalized if t.answer is not None else None, t.correct)


def _trace_steps(trace: dict[str, Any], strings: _Strings) -> list[list[Any]]:
    """An ensemble trace as the page shows it: per step [chosen sentence, its proposers, its score, per-evaluator
    scores, how many candidates there were, the note, alternatives ([text, proposers, score], best first)]."""
    steps = []
    for step in trace.get("steps", []):
        candidates = step.get("candidates", [])
        chosen = step.get("chosen")
        picked = candidates[chosen] if chosen is not None and chosen < len(candidates) else None
        others = sorted(
            (c for i, c in enumerate(candidates) if i != chosen),
            key=lambda c: -c["score"] if isinstance(c.get("score"), float) and math.isfinite(c["score"]) else math.inf,
        )[:_ALTERNATIVES]
        steps.append(
            [
                strings(picked["text"]) if picked else None,
                sorted({p["model"] for p in picked["proposers"]}) if picked else [],
                picked.get("score") if picked else None,
                picked.get("scores", {}) if picked else {},
                len(candidates),
                step.get("note", ""),
                [
                    [
                        strings(c["text"][:_ALTERNATIVE_CHARS]),
                        sorted({p["model"] for p in c["proposers"]}),
                        c.get("score"),
                    ]
                    for c in others
                ],
            ]
        )
    return steps


def _struck(removal: str | None, full: ExplanationRow | None) -> dict[str, Any] | None:
    """Where answer removal ran and its source CoT is stored: the source's sentence boundaries and the indices it
    dropped (the RemovalReport's `dropped`, indices into the source's sentences), for the page to strike through."""
    if not removal or full is None or not full.cot:
        return None
    report = json.loads(removal)
    spans = sentence_spans(full.cot)
    return {
        "method": report.get("method"),
        "ends": [end for _, end in spans],
        "dropped": list(report.get("dropped", ())),
        "leaks": report.get("leaks", []),
        "verbatim": report.get("verbatim"),
    }


def _cots(explanations: list[ExplanationRow], strings: _Strings, problem_ids: dict[str, int]) -> list[list[Any]]:
    """Every stored CoT: [problem, source, kind, sample, variant, text, answer, correct, truncated, extra]; extra holds
    the ensemble trace (`trace`) or the struck-through source (`full`, `struck`) when there is one."""
    by_key = {(e.problem_id, e.source, e.kind, e.sample_index, e.variant): e for e in explanations}
    rows = []
    for e in explanations:
        extra: dict[str, Any] = {}
        if e.trace:
            extra["trace"] = _finite(_trace_steps(json.loads(e.trace), strings))
        if e.variant != "full":
            full = by_key.get((e.problem_id, e.source, e.kind, e.sample_index, "full"))
            struck = _struck(e.removal, full)
            if struck and full is not None:
                extra["full"] = strings(full.cot)
                extra["struck"] = struck
        if e.redacted:
            extra["redacted"] = True
        problem = problem_ids.setdefault(e.problem_id, len(problem_ids))
        rows.append(
            [
                problem,
                strings(e.source),
                e.kind,
                e.sample_index,
                e.variant,
                strings(e.cot),
                strings(e.answer),
                _flag(e.correct),
                int(e.truncated),
                extra,
            ]
        )
    return rows


def _given_cot(t: TrialRow, key: ConditionKey, cot_index: dict[tuple[str, str, str, int, str], int]) -> int | None:
    """The index of the stored CoT the trial was given, when it is stored."""
    sample = t.sample_index if key.condition == Condition.SAMPLED else 0
    source = t.source or t.evaluator
    for kind in _COT_KINDS.get(key.condition, ()):
        found = cot_index.get((t.problem_id, source, kind, sample, t.variant))
        if found is not None:
            return found
    return None


def _conditions(
    report: Report,
    trials: Iterable[TrialRow],
    strings: _Strings,
    problem_ids: dict[str, int],
    cot_index: dict[tuple[str, str, str, int, str], int],
    with_texts: bool,
) -> list[dict[str, Any]]:
    """Per condition and variant (in the report's order): its summary from the report and its trials as rows
    [problem, evaluator, answer, correct, text, flags (1 failed, 2 truncated), given CoT], plus each problem's
    agreement by the report's metric."""
    order = {(c.name, c.variant): i for i, c in enumerate(report.conditions)}
    grouped: dict[int, list[TrialRow]] = defaultdict(list)
    for t in trials:
        key = ConditionKey.of(t)
        position = order.get((key.label, t.variant))
        if position is not None:
            grouped[position].append(t)
    conditions = []
    for position, summary in enumerate(report.conditions):
        rows, answers = [], defaultdict(list)
        for t in grouped[position]:
            key = ConditionKey.of(t)
            problem = problem_ids.setdefault(t.problem_id, len(problem_ids))
            answers[problem].append(_answer_row(t))
            flags = (1 if t.failed else 0) | (2 if t.truncated else 0)
            text = (t.text if not t.failed else f"{t.error_kind}: {t.error}") if with_texts else None
            given = _given_cot(t, key, cot_index)
            rows.append(
                [problem, strings(t.evaluator), strings(t.answer), _flag(t.correct), strings(text), flags, given]
            )
        agreement = {str(p): _agreement(found, report.metric) for p, found in answers.items()}
        conditions.append({"summary": summary.as_json(), "trials": rows, "agreement": agreement})
    return conditions


def _problems(
    problem_ids: dict[str, int], trials: list[TrialRow], explanations: list[ExplanationRow], strings: _Strings
) -> list[list[Any]]:
    """Per problem: [id, question (the prompt a CoT was generated from, when it was stored)]. The results DB stores
    no question text or gold answer of its own, so that prompt is the closest there is. A trial's prompt holds the
    CoT it was given, so only trials without one (empty) can stand in for a CoT's."""
    prompts: dict[str, str] = {}
    rows: list[ExplanationRow | TrialRow] = [*explanations, *(t for t in trials if t.condition == Condition.EMPTY)]
    for row in rows:
        if row.prompt_text and row.problem_id not in prompts:
            prompts[row.problem_id] = row.prompt_text
    ordered = sorted(problem_ids.items(), key=lambda item: item[1])
    return [[pid, strings(prompts.get(pid))] for pid, _ in ordered]


def explorer_data(results: ResultsDB, report: Report) -> dict[str, Any]:
    """The page's data: the report's numbers (`Report.as_json`), every condition's trials, every stored CoT with
    its answer-removal and ensemble details, the problems, and the string table they all point into."""
    trials = list(results.trials(report.study))
    explanations = list(results.explanations(report.study))
    strings = _Strings()
    problem_ids: dict[str, int] = {}
    for pid in sorted({t.problem_id for t in trials} | {e.problem_id for e in explanations}, key=_natural):
        problem_ids[pid] = len(problem_ids)
    cots = _cots(explanations, strings, problem_ids)
    cot_index = {(e.problem_id, e.source, e.kind, e.sample_index, e.variant): i for i, e in enumerate(explanations)}
    with_texts = len(trials) <= MAX_ANSWER_TEXTS
    texts_left_out = 0 if with_texts else len(trials)
    conditions = _conditions(report, trials, strings, problem_ids, cot_index, with_texts)
    evaluators = sorted({t.evaluator for t in trials})
    # Floats are only in the report and the ensemble traces (made finite there); the rest is ints and strings.
    return {
        "study": report.study,
        "metric": report.metric,
        # The report's own lines (one place for every renderer): each metric, the strict breakdown, accuracy.
        "definitions": METRIC_DEFINITIONS | {"accuracy": ACCURACY_DEFINITION, "breakdown": BREAKDOWN_DEFINITION},
        "report": _finite(report.as_json()),
        "evaluators": evaluators,
        "conditions": conditions,
        "cots": cots,
        "problems": _problems(problem_ids, trials, explanations, strings),
        "strings": strings.items,
        "texts_left_out": texts_left_out,
    }


def _natural(pid: str) -> tuple[int, int | str]:
    """Problem ids in number order when they are numbers ("2" before "10"), else in text order."""
    return (0, int(pid)) if pid.isdigit() else (1, pid)


def _asset(name: str) -> str:
    return (resources.files("cotbridge.analysis") / "explorer_assets" / name).read_text(encoding="utf-8")


def encode_data(data: dict[str, Any]) -> str:
    """The page's data as gzip-compressed JSON in base64 (what the page decodes with DecompressionStream)."""
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def explorer_page(results: ResultsDB, report: Report) -> str:
    """The explorer of a report's study as one self-contained HTML page (script, styles and data inline)."""
    data = explorer_data(results, report)
    page = _asset("explorer.html")
    # Replaced one at a time, the data last: no asset can smuggle a placeholder into another.
    for placeholder, value in (
        ("/*STYLE*/", _asset("explorer.css")),
        ("/*SCRIPT*/", _asset("explorer.js")),
        ("<!--TITLE-->", html.escape(f"{report.study}: cotbridge explorer")),
        ("<!--DATA-->", encode_data(data)),
    ):
        page = page.replace(placeholder, value, 1)
    return page
