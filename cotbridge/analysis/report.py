"""Reports: a results DB read back into the paper's tables and more, as rich tables, JSON, CSV or one HTML page.

The numbers come from `cotbridge.metrics` (pure); this module only gathers trials into per-condition data and
renders. Conditions are labelled `empty`, `default`, `sampled` (`sampled#i` for further samples),
`transfer:SOURCE`, `ensemble:NAME`, each with its variant (`full` or `without_answer`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table

from cotbridge.analysis import metrics
from cotbridge.analysis.metrics import AnswerRow
from cotbridge.cot.ensemble import StepChoice, chosen_by_generator
from cotbridge.errors import ConfigError
from cotbridge.study.results import ResultsDB, TrialRow

Metric = Literal["paper", "strict"]


def condition_label(trial: TrialRow) -> str:
    if trial.condition in ("transfer", "ensemble") and trial.source:
        return f"{trial.condition}:{trial.source}"
    if trial.sample_index:
        return f"{trial.condition}#{trial.sample_index}"
    return trial.condition


def _order(label: str) -> tuple[int, str]:
    head = label.split(":")[0].split("#")[0]
    rank = {"empty": 0, "default": 1, "sampled": 2, "transfer": 3}.get(head, 4)
    return rank, label


@dataclass(slots=True)
class ConditionSummary:
    name: str
    variant: str
    metric: str
    mean: float
    std: float
    pairs: int
    ci_low: float
    ci_high: float
    coverage: float
    consistent_correct: float
    consistent_wrong: float
    inconsistent: float
    evaluators: int
    problems: int

    def as_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(slots=True)
class Report:
    study: str
    metric: str
    conditions: list[ConditionSummary] = field(default_factory=list)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # "label/variant" -> evaluator -> acc
    matrix: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> sources, targets, values
    ensembles: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> steps, chosen share, endings
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> per condition tokens and USD
    modes: dict[str, dict[str, int]] = field(default_factory=dict)  # evaluator -> injection mode -> trials
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "metric": self.metric,
            "conditions": [c.as_json() for c in self.conditions],
            "accuracy": self.accuracy,
            "matrix": self.matrix,
            "ensembles": self.ensembles,
            "costs": self.costs,
            "modes": self.modes,
            "failures": self.failures,
        }


def gather(trials: list[TrialRow]) -> dict[tuple[str, str], dict[str, dict[str, AnswerRow]]]:
    """(condition label, variant) -> evaluator -> problem id -> AnswerRow, failed trials left out."""
    data: dict[tuple[str, str], dict[str, dict[str, AnswerRow]]] = defaultdict(lambda: defaultdict(dict))
    for t in trials:
        if t.error is not None:
            continue
        normalized = t.normalized if t.answer is not None else None
        data[(condition_label(t), t.variant)][t.evaluator][t.problem_id] = AnswerRow(
            t.problem_id, t.answer, normalized, t.correct
        )
    return data


def build_report(results: ResultsDB, study: str | None = None, metric: Metric = "paper", seed: int = 0) -> Report:
    """Every condition's consistency (mean, std over pairs, bootstrap CI over problems, coverage), the breakdown,
    accuracy per evaluator, and the generator x evaluator transfer matrix."""
    names = results.studies()
    if not names:
        raise ConfigError(f"{results.path} holds no study; run one with `cotbridge run` or import one")
    if study is None:
        study = names[-1]
    elif study not in names:
        raise ConfigError(f"{results.path} has no study {study!r}; it has {', '.join(names)}")
    trials = list(results.trials(study))
    report = Report(study=study, metric=metric)
    report.failures = [f"{t.condition}/{t.evaluator}/{t.problem_id}: {t.error}" for t in trials if t.error]
    judge = metrics.paper_consistency if metric == "paper" else metrics.strict_consistency
    data = gather(trials)
    for (label, variant), condition in sorted(data.items(), key=lambda item: (_order(item[0][0]), item[0][1])):
        report.accuracy[f"{label}/{variant}"] = {
            evaluator: result.accuracy for evaluator, result in sorted(metrics.accuracy(condition).items())
        }
        if len(condition) < 2:
            continue
        result = judge(condition)
        strict = result if metric == "strict" else metrics.strict_consistency(condition)
        ci = metrics.consistency_ci(condition, metric=metric, seed=seed)
        report.conditions.append(
            ConditionSummary(
                name=label,
                variant=variant,
                metric=metric,
                mean=result.mean,
                std=result.std,
                pairs=result.n_pairs,
                ci_low=ci.low,
                ci_high=ci.high,
                coverage=result.coverage,
                consistent_correct=strict.consistent_correct,
                consistent_wrong=strict.consistent_wrong,
                inconsistent=strict.inconsistent,
                evaluators=len(condition),
                problems=len({pid for rows in condition.values() for pid in rows}),
            )
        )
    for variant in sorted({v for _, v in data}):
        transfer = {
            label.split(":", 1)[1]: condition
            for (label, v), condition in data.items()
            if v == variant and label.startswith("transfer:")
        }
        if transfer:
            grid = metrics.transfer_matrix(transfer, metric="accuracy")
            report.matrix[variant] = {
                "metric": "accuracy",
                "sources": list(grid.sources),
                "targets": list(grid.targets),
                "values": [[None if math.isnan(v) else float(v) for v in row] for row in grid.values],
            }
    report.ensembles = ensemble_summary(results, study)
    report.costs = cost_summary(results, study, trials)
    for t in trials:
        per = report.modes.setdefault(t.evaluator, {})
        per[t.mode] = per.get(t.mode, 0) + 1
    return report


def cost_summary(results: ResultsDB, study: str, trials: list[TrialRow]) -> dict[str, dict[str, Any]]:
    """Tokens per model and condition (CoT generation counted apart), in USD where the study gave a price."""
    models = results.study_config(study).get("models") or {}
    prices = {name: m.get("price") for name, m in models.items() if isinstance(m, dict)}
    tokens: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for t in trials:
        counts = tokens[t.evaluator][f"{condition_label(t)}/{t.variant}"]
        counts[0] += t.prompt_tokens
        counts[1] += t.completion_tokens
        counts[2] += t.reasoning_tokens
    for e in results.explanations(study):
        counts = tokens[e.source][f"CoTs ({e.kind}, {e.variant})"]
        counts[0] += e.prompt_tokens
        counts[1] += e.completion_tokens
        counts[2] += e.reasoning_tokens
    summary: dict[str, dict[str, Any]] = {}
    for model, per in sorted(tokens.items()):
        price = prices.get(model)
        rows = {}
        for label, (prompt, completion, reasoning) in sorted(per.items()):
            usd = (prompt * price["input"] + completion * price["output"]) / 1e6 if price else None
            rows[label] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "reasoning_tokens": reasoning,
                "usd": usd,
            }
        total_usd = sum(r["usd"] or 0.0 for r in rows.values()) if price else None
        summary[model] = {
            "rows": rows,
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows.values()),
            "completion_tokens": sum(r["completion_tokens"] for r in rows.values()),
            "reasoning_tokens": sum(r["reasoning_tokens"] for r in rows.values()),
            "usd": total_usd,
        }
    return summary


def ensemble_summary(results: ResultsDB, study: str) -> dict[str, dict[str, Any]]:
    """Per ensemble: runs, steps (median, max), share of chosen sentences per generator, how runs ended."""
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in results.explanations(study):
        if row.kind == "ensemble" and row.variant == "full" and row.trace:
            traces[row.source].append(json.loads(row.trace))
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in sorted(traces.items()):
        steps = sorted(len(run["steps"]) for run in runs)
        chosen: dict[str, int] = defaultdict(int)
        fallbacks = 0
        for run in runs:
            fallbacks += sum(step["note"] == StepChoice.FALLBACK for step in run["steps"])
            for generator, count in chosen_by_generator(run).items():
                chosen[generator] += count
        total = sum(chosen.values()) or 1
        ended: dict[str, int] = defaultdict(int)
        for run in runs:
            ended[run["ended"]] += 1
        summary[name] = {
            "runs": len(runs),
            "steps_median": float(statistics.median(steps)),
            "steps_max": steps[-1],
            "chosen_share": {g: n / total for g, n in sorted(chosen.items())},
            "guard_fallbacks": fallbacks,
            "ended": dict(sorted(ended.items())),
        }
    return summary


# -- rendering ----------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _heat(value: float | None) -> str:
    """A red-to-green colour for a value in [0, 1]."""
    if value is None or math.isnan(value):
        return "#eeeeee"
    v = max(0.0, min(1.0, value))
    return f"rgb({int(230 - 130 * v)},{int(120 + 110 * v)},{int(120 + 20 * v)})"


def render_table(report: Report, console: Console) -> None:
    table = Table(title=f"{report.study}: consistency ({report.metric} metric)", box=box.SIMPLE_HEAD)
    table.add_column("condition", overflow="fold", min_width=14)
    table.add_column("CoT", no_wrap=True, min_width=7)
    for column in ("mean±std", "95% CI", "pairs", "cover", "same✓", "same✗", "differ"):
        table.add_column(column, justify="right", overflow="fold")
    for c in report.conditions:
        table.add_row(
            c.name,
            "full" if c.variant == "full" else "no ans.",
            f"{_fmt(c.mean)}±{_fmt(c.std)}",
            f"{_fmt(c.ci_low)}-{_fmt(c.ci_high)}",
            str(c.pairs),
            _fmt(c.coverage),
            _fmt(c.consistent_correct),
            _fmt(c.consistent_wrong),
            _fmt(c.inconsistent),
        )
    console.print(table)
    console.print(
        "[dim]same✓ / same✗ / differ (strict metric): pairs giving the same correct value, the same wrong value, "
        "or different values; cover: share of pair-problems compared[/dim]"
    )
    for variant, grid in report.matrix.items():
        heat = Table(title=f"transfer matrix ({variant}): accuracy of evaluator (column) given source's CoT (row)")
        heat.add_column("source \\ evaluator")
        for target in grid["targets"]:
            heat.add_column(target, justify="right")
        for source, row in zip(grid["sources"], grid["values"], strict=True):
            cells = [f"[on {_heat(v)}] {_fmt(v)} [/]" if v is not None else "-" for v in row]
            heat.add_row(source, *cells)
        console.print(heat)
    for name, ens in report.ensembles.items():
        shares = ", ".join(f"{g} {share:.0%}" for g, share in ens["chosen_share"].items())
        endings = ", ".join(f"{why}: {n}" for why, n in ens["ended"].items())
        console.print(
            f"ensemble [bold]{name}[/bold]: {ens['runs']} runs, steps median {ens['steps_median']:g} max "
            f"{ens['steps_max']}; chosen sentences: {shares}; guard fallbacks {ens['guard_fallbacks']}; "
            f"ended: {endings}"
        )
    if report.modes:
        ran = "; ".join(
            f"{model}: " + ", ".join(f"{mode} {n}" for mode, n in sorted(per.items()))
            for model, per in sorted(report.modes.items())
        )
        console.print(f"trials per injection mode: {ran}")
    if report.costs:
        costs = Table(title="tokens and cost (per condition for priced models)", box=box.SIMPLE_HEAD)
        for column in ("model", "condition", "prompt tokens", "completion tokens", "of which reasoning", "USD"):
            costs.add_column(column, justify="left" if column in ("model", "condition") else "right")

        def usd(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        for model, spent in report.costs.items():
            # Per-condition rows for priced models only: for the others, tokens per condition are in JSON/HTML.
            for label, row in spent["rows"].items() if spent["usd"] is not None else ():
                costs.add_row(
                    model,
                    label,
                    f"{row['prompt_tokens']:,}",
                    f"{row['completion_tokens']:,}",
                    f"{row['reasoning_tokens']:,}",
                    usd(row["usd"]),
                )
            costs.add_row(
                f"[bold]{model}[/bold]",
                "[bold]total[/bold]",
                f"{spent['prompt_tokens']:,}",
                f"{spent['completion_tokens']:,}",
                f"{spent['reasoning_tokens']:,}",
                f"[bold]{usd(spent['usd'])}[/bold]",
                end_section=True,
            )
        console.print(costs)
    accuracy = Table(title="accuracy per evaluator")
    evaluators = sorted({e for per in report.accuracy.values() for e in per})
    accuracy.add_column("condition/variant")
    for evaluator in evaluators:
        accuracy.add_column(evaluator, justify="right")
    for label, per in report.accuracy.items():
        accuracy.add_row(label, *[_fmt(per.get(e)) for e in evaluators])
    console.print(accuracy)
    if report.failures:
        console.print(f"[red]{len(report.failures)} failed trial(s)[/red], e.g. {report.failures[0]}")


def render_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2)


def render_csv(report: Report) -> str:
    out = io.StringIO()
    rows = [c.as_json() for c in report.conditions]
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def render_html(report: Report) -> str:
    """One self-contained page (inline CSS, no scripts, nothing fetched): viewable offline."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(report.study)}: cotbridge report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
        "td.l,th.l{text-align:left}caption{font-weight:bold;text-align:left;padding:4px 0}</style></head><body>",
        f"<h1>{e(report.study)}</h1><p>Consistency metric: <b>{e(report.metric)}</b>. Breakdown columns use the "
        "strict metric.</p>",
        "<table><caption>Consistency per condition</caption><tr><th class=l>condition</th><th class=l>variant</th>"
        "<th>mean</th><th>std</th><th>95% CI</th><th>pairs</th><th>coverage</th><th>cons.+correct</th>"
        "<th>cons.+wrong</th><th>inconsistent</th></tr>",
    ]
    for c in report.conditions:
        parts.append(
            f"<tr><td class=l>{e(c.name)}</td><td class=l>{e(c.variant)}</td>"
            f"<td style='background:{_heat(c.mean)}'>{_fmt(c.mean)}</td><td>{_fmt(c.std)}</td>"
            f"<td>{_fmt(c.ci_low)}&ndash;{_fmt(c.ci_high)}</td><td>{c.pairs}</td><td>{_fmt(c.coverage)}</td>"
            f"<td>{_fmt(c.consistent_correct)}</td><td>{_fmt(c.consistent_wrong)}</td>"
            f"<td>{_fmt(c.inconsistent)}</td></tr>"
        )
    parts.append("</table>")
    for variant, grid in report.matrix.items():
        parts.append(
            f"<table><caption>Transfer matrix ({e(variant)}): accuracy, source (row) x evaluator "
            "(column)</caption><tr><th class=l>source</th>"
        )
        parts.extend(f"<th>{e(t)}</th>" for t in grid["targets"])
        parts.append("</tr>")
        for source, row in zip(grid["sources"], grid["values"], strict=True):
            parts.append(f"<tr><td class=l>{e(source)}</td>")
            parts.extend(f"<td style='background:{_heat(v)}'>{_fmt(v)}</td>" for v in row)
            parts.append("</tr>")
        parts.append("</table>")
    evaluators = sorted({ev for per in report.accuracy.values() for ev in per})
    parts.append("<table><caption>Accuracy per evaluator</caption><tr><th class=l>condition/variant</th>")
    parts.extend(f"<th>{e(ev)}</th>" for ev in evaluators)
    parts.append("</tr>")
    for label, per in report.accuracy.items():
        parts.append(f"<tr><td class=l>{e(label)}</td>")
        parts.extend(f"<td style='background:{_heat(per.get(ev))}'>{_fmt(per.get(ev))}</td>" for ev in evaluators)
        parts.append("</tr>")
    parts.append("</table>")
    if report.costs:
        parts.append(
            "<table><caption>Tokens and cost per model and condition</caption><tr><th class=l>model</th>"
            "<th class=l>condition</th><th>prompt tokens</th><th>completion tokens</th><th>of which reasoning</th>"
            "<th>USD</th></tr>"
        )
        for model, spent in report.costs.items():
            rows = [*spent["rows"].items(), ("total", spent)]
            for label, row in rows:
                usd = "-" if row["usd"] is None else f"{row['usd']:.4f}"
                parts.append(
                    f"<tr><td class=l>{e(model)}</td><td class=l>{e(label)}</td><td>{row['prompt_tokens']:,}</td>"
                    f"<td>{row['completion_tokens']:,}</td><td>{row['reasoning_tokens']:,}</td><td>{usd}</td></tr>"
                )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
