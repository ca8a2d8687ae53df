"""Renderers of a `Report`: rich tables for the terminal, JSON, CSV (one row per condition) and one HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cotbridge.analysis.report import Report


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _heat(value: float | None) -> str:
    """A red-to-green colour for a value in [0, 1]."""
    if value is None or math.isnan(value):
        return "#eeeeee"
    v = max(0.0, min(1.0, value))
    return f"rgb({int(230 - 130 * v)},{int(120 + 110 * v)},{int(120 + 20 * v)})"


# -- terminal -------------------------------------------------------------------------------------------------------


def render_table(report: Report, console: Console) -> None:
    """Prints the report to a rich console: consistency per condition, transfer matrices, ensemble runs, trials per
    injection mode, tokens and cost, and accuracy per evaluator."""
    console.print(_consistency_table(report))
    console.print(
        "[dim]same✓ / same✗ / differ (strict metric): pairs giving the same correct value, the same wrong value, "
        "or different values; cover: share of pair-problems compared[/dim]"
    )
    for variant, grid in report.matrix.items():
        console.print(_matrix_table(variant, grid))
    for name, ens in report.ensembles.items():
        shares = escape(", ".join(f"{g} {share:.0%}" for g, share in ens["chosen_share"].items()))
        endings = escape(", ".join(f"{why}: {n}" for why, n in ens["ended"].items()))
        console.print(
            f"ensemble [bold]{escape(name)}[/bold]: {ens['runs']} runs, steps median {ens['steps_median']:g} max "
            f"{ens['steps_max']}; chosen sentences: {shares}; guard fallbacks {ens['guard_fallbacks']}; "
            f"ended: {endings}"
        )
        if ens["truncation"]:
            console.print(f"[yellow]{escape(ens['truncation'])}[/yellow]")
    if report.modes:
        ran = "; ".join(
            f"{model}: " + ", ".join(f"{mode} {n}" for mode, n in sorted(per.items()))
            for model, per in sorted(report.modes.items())
        )
        console.print(f"trials per injection mode: {escape(ran)}")
    if report.costs:
        console.print(_cost_table(report))
    console.print(_accuracy_table(report))
    if report.failures:
        console.print(f"[red]{len(report.failures)} failed trial(s)[/red], e.g. {escape(report.failures[0])}")
    if report.truncated:
        cut = escape(", ".join(f"{label} {n}" for label, n in report.truncated.items()))
        console.print(f"[yellow]{sum(report.truncated.values())} trial(s) cut off at their token cap[/yellow]: {cut}")
    if report.truncated_cots:
        cut = escape(", ".join(f"{label} {n}" for label, n in report.truncated_cots.items()))
        count = sum(report.truncated_cots.values())
        console.print(
            f"[yellow]{count} CoT(s) cut off at cot_max_tokens[/yellow] (their trials used them as cut): {cut}"
        )
    if report.redacted_cots:
        gaps = escape(", ".join(f"{label} {n}" for label, n in report.redacted_cots.items()))
        count = sum(report.redacted_cots.values())
        console.print(f"[yellow]{count} CoT(s) with reasoning the vendor withheld[/yellow] (gaps): {gaps}")


def _consistency_table(report: Report) -> Table:
    table = Table(title=f"{escape(report.study)}: consistency ({report.metric} metric)", box=box.SIMPLE_HEAD)
    table.add_column("condition", overflow="fold", min_width=14)
    table.add_column("CoT", no_wrap=True, min_width=7)
    for column in ("mean±std", "95% CI", "pairs", "cover", "same✓", "same✗", "differ"):
        table.add_column(column, justify="right", overflow="fold")
    for c in report.conditions:
        table.add_row(
            escape(c.name),
            "full" if c.variant == "full" else "no ans.",
            f"{_fmt(c.mean)}±{_fmt(c.std)}",
            f"{_fmt(c.ci_low)}-{_fmt(c.ci_high)}",
            str(c.pairs),
            _fmt(c.coverage),
            _fmt(c.consistent_correct),
            _fmt(c.consistent_wrong),
            _fmt(c.inconsistent),
        )
    return table


def _matrix_table(variant: str, grid: dict[str, Any]) -> Table:
    heat = Table(title=f"transfer matrix ({escape(variant)}): accuracy of evaluator (column) given source's CoT (row)")
    heat.add_column("source \\ evaluator")
    for target in grid["targets"]:
        heat.add_column(escape(target), justify="right")
    for source, row in zip(grid["sources"], grid["values"], strict=True):
        cells = [f"[on {_heat(v)}] {_fmt(v)} [/]" if v is not None else "-" for v in row]
        heat.add_row(escape(source), *cells)
    return heat


def _cost_table(report: Report) -> Table:
    costs = Table(title="tokens and cost (per condition for priced models)", box=box.SIMPLE_HEAD)
    for column in ("model", "condition", "prompt tokens", "completion tokens", "of which reasoning", "USD"):
        costs.add_column(column, justify="left" if column in ("model", "condition") else "right")
    for model, spent in report.costs.items():
        # Per-condition rows for priced models only: for the others, tokens per condition are in JSON/HTML.
        for label, row in spent["rows"].items() if spent["usd"] is not None else ():
            costs.add_row(
                escape(model),
                escape(label),
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"{row['reasoning_tokens']:,}",
                _usd(row["usd"]),
            )
        costs.add_row(
            f"[bold]{escape(model)}[/bold]",
            "[bold]total[/bold]",
            f"{spent['prompt_tokens']:,}",
            f"{spent['completion_tokens']:,}",
            f"{spent['reasoning_tokens']:,}",
            f"[bold]{_usd(spent['usd'])}[/bold]",
            end_section=True,
        )
    return costs


def _accuracy_table(report: Report) -> Table:
    accuracy = Table(title="accuracy per evaluator")
    evaluators = sorted({e for per in report.accuracy.values() for e in per})
    accuracy.add_column("condition/variant")
    for evaluator in evaluators:
        accuracy.add_column(escape(evaluator), justify="right")
    for label, per in report.accuracy.items():
        accuracy.add_row(escape(label), *[_fmt(per.get(e)) for e in evaluators])
    return accuracy


# -- files ------------------------------------------------------------------------------------------------------------


def render_json(report: Report) -> str:
    """The whole report as indented JSON (nan as null)."""
    return json.dumps(report.as_json(), indent=2)


def render_csv(report: Report) -> str:
    """One CSV row per condition and variant, every number's column named with its metric ("" when there is none):
    consistency, its breakdown, then `accuracy_EVALUATOR` for every evaluator of the study."""
    out = io.StringIO()
    evaluators = sorted({e for per in report.accuracy.values() for e in per})
    rows = []
    for c in report.conditions:
        accuracy = report.accuracy.get(f"{c.name}/{c.variant}", {})
        rows.append(c.columns() | {f"accuracy_{e}": accuracy.get(e) for e in evaluators})
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
    "td.l,th.l{text-align:left}caption{font-weight:bold;text-align:left;padding:4px 0}</style></head><body>"
)


def render_html(report: Report) -> str:
    """One self-contained page (inline CSS, no scripts, nothing fetched): viewable offline."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(report.study)}: cotbridge report</title>",
        _STYLE,
        f"<h1>{e(report.study)}</h1><p>Consistency metric: <b>{e(report.metric)}</b>. Breakdown columns use the "
        "strict metric.</p>",
    ]
    parts += _html_consistency(report)
    for variant, grid in report.matrix.items():
        parts += _html_matrix(variant, grid)
    parts += _html_accuracy(report)
    if report.ensembles:
        parts += _html_ensembles(report)
    if report.costs:
        parts += _html_costs(report)
    if report.failures:
        shown = "".join(f"<li>{html.escape(f)}</li>" for f in report.failures[:50])
        more = f"<p>and {len(report.failures) - 50} more (JSON report)</p>" if len(report.failures) > 50 else ""
        parts.append(f"<h2>{len(report.failures)} failed trial(s)</h2><ul>{shown}</ul>{more}")
    if report.truncated:
        cut = "".join(f"<li>{html.escape(label)}: {n}</li>" for label, n in report.truncated.items())
        parts.append(f"<h2>{sum(report.truncated.values())} trial(s) cut off at their token cap</h2><ul>{cut}</ul>")
    if report.truncated_cots:
        cut = "".join(f"<li>{html.escape(label)}: {n}</li>" for label, n in report.truncated_cots.items())
        count = sum(report.truncated_cots.values())
        parts.append(f"<h2>{count} CoT(s) cut off at cot_max_tokens</h2><ul>{cut}</ul>")
    if report.redacted_cots:
        gaps = "".join(f"<li>{html.escape(label)}: {n}</li>" for label, n in report.redacted_cots.items())
        count = sum(report.redacted_cots.values())
        parts.append(f"<h2>{count} CoT(s) with reasoning the vendor withheld</h2><ul>{gaps}</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _html_consistency(report: Report) -> list[str]:
    m = html.escape(report.metric)
    parts = [
        "<table><caption>Consistency per condition</caption><tr><th class=l>condition</th><th class=l>variant</th>"
        f"<th>mean ({m})</th><th>std ({m})</th><th>95% CI ({m})</th><th>pairs</th><th>coverage ({m})</th>"
        "<th>cons.+correct (strict)</th><th>cons.+wrong (strict)</th><th>inconsistent (strict)</th>"
        "<th>coverage (strict)</th></tr>"
    ]
    for c in report.conditions:
        parts.append(
            f"<tr><td class=l>{html.escape(c.name)}</td><td class=l>{html.escape(c.variant)}</td>"
            f"<td style='background:{_heat(c.mean)}'>{_fmt(c.mean)}</td><td>{_fmt(c.std)}</td>"
            f"<td>{_fmt(c.ci_low)}&ndash;{_fmt(c.ci_high)}</td><td>{c.pairs}</td><td>{_fmt(c.coverage)}</td>"
            f"<td>{_fmt(c.consistent_correct)}</td><td>{_fmt(c.consistent_wrong)}</td>"
            f"<td>{_fmt(c.inconsistent)}</td><td>{_fmt(c.breakdown_coverage)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _heat_table(caption: str, corner: str, columns: list[str], rows: list[tuple[str, list[float | None]]]) -> list[str]:
    """A table of values in [0, 1], each cell coloured by its value."""
    e = html.escape
    parts = [f"<table><caption>{caption}</caption><tr><th class=l>{e(corner)}</th>"]
    parts.extend(f"<th>{e(column)}</th>" for column in columns)
    parts.append("</tr>")
    for label, values in rows:
        parts.append(f"<tr><td class=l>{e(label)}</td>")
        parts.extend(f"<td style='background:{_heat(v)}'>{_fmt(v)}</td>" for v in values)
        parts.append("</tr>")
    parts.append("</table>")
    return parts


def _html_matrix(variant: str, grid: dict[str, Any]) -> list[str]:
    caption = f"Transfer matrix ({html.escape(variant)}): accuracy, source (row) x evaluator (column)"
    rows = list(zip(grid["sources"], grid["values"], strict=True))
    return _heat_table(caption, "source", list(grid["targets"]), rows)


def _html_accuracy(report: Report) -> list[str]:
    evaluators = sorted({ev for per in report.accuracy.values() for ev in per})
    rows = [(label, [per.get(ev) for ev in evaluators]) for label, per in report.accuracy.items()]
    return _heat_table("Accuracy per evaluator", "condition/variant", evaluators, rows)


def _html_ensembles(report: Report) -> list[str]:
    e = html.escape
    parts = ["<h2>Ensemble CoTs</h2><ul>"]
    for name, ens in report.ensembles.items():
        shares = ", ".join(f"{g} {share:.0%}" for g, share in ens["chosen_share"].items())
        endings = ", ".join(f"{why}: {n}" for why, n in ens["ended"].items())
        parts.append(
            f"<li><b>{e(name)}</b>: {ens['runs']} runs, steps median {ens['steps_median']:g} max {ens['steps_max']}; "
            f"chosen sentences: {e(shares)}; guard fallbacks {ens['guard_fallbacks']}; ended: {e(endings)}</li>"
        )
    parts.append("</ul>")
    parts.extend(f"<p><b>{e(ens['truncation'])}</b></p>" for ens in report.ensembles.values() if ens["truncation"])
    return parts


def _html_costs(report: Report) -> list[str]:
    e = html.escape
    parts = [
        "<table><caption>Tokens and cost per model and condition</caption><tr><th class=l>model</th>"
        "<th class=l>condition</th><th>prompt tokens</th><th>completion tokens</th><th>of which reasoning</th>"
        "<th>USD</th></tr>"
    ]
    for model, spent in report.costs.items():
        for label, row in [*spent["rows"].items(), ("total", spent)]:
            parts.append(
                f"<tr><td class=l>{e(model)}</td><td class=l>{e(label)}</td><td>{row['prompt_tokens']:,}</td>"
                f"<td>{row['completion_tokens']:,}</td><td>{row['reasoning_tokens']:,}</td>"
                f"<td>{_usd(row['usd'])}</td></tr>"
            )
    parts.append("</table>")
    return parts
