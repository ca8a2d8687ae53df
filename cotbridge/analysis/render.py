"""Renderers of a `Report`: rich tables for the terminal, JSON, CSV (one row per condition) and one HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from cotbridge.analysis.report import (
    ACCURACY_DEFINITION,
    BREAKDOWN_DEFINITION,
    METRIC_DEFINITIONS,
    ConditionSummary,
    Report,
    live_line,
)


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
# Every table fits the console: numbers never wrap (no_wrap columns), optional columns are dropped when the console
# is narrow, and tables with a column per evaluator are split into several when they would not fit.

_VARIANT_GROUPS = {"full": "full CoT", "without_answer": "no answer"}
_SHORT_VARIANT = {"full": "full", "without_answer": "no ans."}


def _compact(value: float | None, digits: int = 3) -> str:
    """A number in [0, 1] as the paper prints it: `.302`, `1.000`; `-` when there is none."""
    if value is None or math.isnan(value):
        return "-"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


def _pm(first: float, second: float, between: str = "±", digits: int = 3) -> str:
    """`.302±.157` or `.24–.37`; a lone `-` when there is no number (a condition with no pair to compare)."""
    if math.isnan(first):
        return "-"
    return f"{_compact(first, digits)}{between}{_compact(second, digits)}"


def _width(console: Console, table: Table) -> int:
    """The width the table takes when nothing limits it (a measurement within the console is capped at its width)."""
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


@dataclass(frozen=True, slots=True)
class _Column:
    """One column of a fitted table: its header, cells (one per row), and when it is dropped (0: never; higher
    goes first)."""

    header: str
    cells: list[str]
    drop: int = 0
    justify: Literal["left", "right"] = "right"


def _fitted(console: Console, title: str | None, columns: list[_Column]) -> tuple[Table, list[_Column]]:
    """The table with as many optional columns as the console's width allows (left out: higher `drop` first)."""
    kept = list(columns)
    while True:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        for column in kept:
            table.add_column(escape(column.header), justify=column.justify, no_wrap=True)
        for row in zip(*(c.cells for c in kept), strict=True):
            table.add_row(*(escape(cell) for cell in row))  # names and labels are shown as written, never as markup
        worst = max((c.drop for c in kept), default=0)
        if worst == 0 or _width(console, table) <= console.width:
            return table, [c for c in columns if c not in kept]
        kept = [c for c in kept if c.drop != worst]


def render_table(report: Report, console: Console) -> None:
    """Prints the report to a rich console, fitted to its width: consistency per condition (full CoT and without
    answer side by side; the strict breakdown when the console is wide enough), what the metric means, transfer
    matrices, ensemble runs, trials per injection mode, tokens and cost (when any were counted), accuracy per
    evaluator, human ratings against consistency, and the aliases."""
    dropped = _print_consistency(report, console)
    console.print(f"[dim]{report.metric} metric: {escape(METRIC_DEFINITIONS[report.metric])}[/dim]")
    if any(c.header.startswith(("same", "differ", "\nsame", "\ndiffer")) for c in dropped):
        console.print(
            "[dim]the strict breakdown (same✓ / same✗ / differ) shows in a wider console, and in --format "
            "json, csv or html[/dim]"
        )
    else:
        console.print(f"[dim]{escape(BREAKDOWN_DEFINITION)}; cover: share of pair-problems compared[/dim]")
    for variant, grid in report.matrix.items():
        rows = [report.alias(source) for source in grid["sources"]]
        title = f"transfer matrix ({_VARIANT_GROUPS.get(variant, variant)})"
        _print_grid(console, title, "source", rows, [report.alias(t) for t in grid["targets"]], grid["values"])
        console.print("[dim]accuracy of the evaluator (column) given the source's CoT (row)[/dim]")
    _print_ensembles(report, console)
    if report.modes:
        ran = "; ".join(
            f"{report.alias(model)}: " + ", ".join(f"{mode} {n}" for mode, n in sorted(per.items()))
            for model, per in sorted(report.modes.items())
        )
        console.print(f"trials per injection mode: {escape(ran)}")
    if _has_costs(report):
        console.print(_cost_table(report))
        for line in _live_lines(report):
            console.print(f"[yellow]{escape(line)}[/yellow]")
    evaluators = sorted({e for per in report.accuracy.values() for e in per})
    labels = []
    for label in report.accuracy:
        name, _, variant = label.rpartition("/")
        labels.append(f"{report.display(name)} {_SHORT_VARIANT.get(variant, variant)}")
    values = [[per.get(e) for e in evaluators] for per in report.accuracy.values()]
    _print_grid(console, "accuracy per evaluator", "condition", labels, [report.alias(e) for e in evaluators], values)
    if report.ratings:
        _print_ratings(report, console)
    _print_notes(report, console)
    _print_legend(report, console)


def _print_consistency(report: Report, console: Console) -> list[_Column]:
    """The paper's layout: a row per condition, a column group per variant. Returns the columns left out."""
    names = list(dict.fromkeys(c.name for c in report.conditions))
    found = {(c.name, c.variant): c for c in report.conditions}
    variants = [v for v in ("full", "without_answer") if any(c.variant == v for c in report.conditions)]
    variants += sorted({c.variant for c in report.conditions} - set(variants))
    columns = [_Column("\ncondition", [report.display(n) for n in names], justify="left")]
    for variant in variants:
        rows = [found.get((n, variant)) for n in names]

        def cells(shown: Callable[[ConditionSummary], str], rows: list[ConditionSummary | None] = rows) -> list[str]:
            return ["" if c is None else shown(c) for c in rows]

        group = _VARIANT_GROUPS.get(variant, variant)
        columns += [
            _Column(f"{group}\nmean±std", cells(lambda c: _pm(c.mean, c.std))),
            _Column("\n95% CI", cells(lambda c: _pm(c.ci_low, c.ci_high, "–", 2)), drop=1),
            _Column("\ncover", cells(lambda c: _compact(c.coverage)), drop=2),
            _Column("\npairs", cells(lambda c: str(c.pairs)), drop=3),
            _Column("\nsame✓", cells(lambda c: _compact(c.consistent_correct)), drop=4),
            _Column("\nsame✗", cells(lambda c: _compact(c.consistent_wrong)), drop=4),
            _Column("\ndiffer", cells(lambda c: _compact(c.inconsistent)), drop=4),
        ]
    title = f"{escape(report.study)}: consistency ({report.metric} metric)"
    table, dropped = _fitted(console, title, columns)
    console.print(table)
    return dropped


def _print_grid(
    console: Console,
    title: str,
    corner: str,
    rows: list[str],
    columns: list[str],
    values: list[list[float | None]],
) -> None:
    """A table of values in [0, 1] with coloured cells, split into several tables by column when it would not fit."""
    start = 0
    while start < len(columns) or not columns:
        end = len(columns)
        while True:
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False)  # the title is a line of its own: never wrapped
            table.add_column(escape(corner), no_wrap=True)
            for column in columns[start:end]:
                table.add_column(escape(column), justify="right", no_wrap=True)
            for label, row in zip(rows, values, strict=True):
                cells = [f"[on {_heat(v)}]{_compact(v)}[/]" if v is not None else "-" for v in row[start:end]]
                table.add_row(escape(label), *cells)
            if end - start <= 1 or _width(console, table) <= console.width:
                break
            end -= 1
        console.print(f"[bold]{escape(title)}[/bold]" + (" (continued)" if start else ""))
        console.print(table)
        if not columns:
            return
        start = end


def _print_ensembles(report: Report, console: Console) -> None:
    for name, ens in report.ensembles.items():
        shares = escape(", ".join(f"{report.alias(g)} {share:.0%}" for g, share in ens["chosen_share"].items()))
        endings = escape(", ".join(f"{why}: {n}" for why, n in ens["ended"].items()))
        console.print(
            f"ensemble [bold]{escape(report.alias(name))}[/bold]: {ens['runs']} runs, steps median "
            f"{ens['steps_median']:g} max {ens['steps_max']}; chosen sentences: {shares}; guard fallbacks "
            f"{ens['guard_fallbacks']}; ended: {endings}"
        )
        if ens["truncation"]:
            console.print(f"[yellow]{escape(ens['truncation'])}[/yellow]")


def _has_costs(report: Report) -> bool:
    """Whether any tokens or dollars were counted (imported outputs have none: no table of zeros)."""
    keys = ("prompt_tokens", "completion_tokens", "reasoning_tokens")
    return any(any(spent[k] for k in keys) or spent["usd"] for spent in report.costs.values())


def _live_lines(report: Report) -> list[str]:
    """A line per batch model some of whose requests were sent live, at the live price (the cost table counts
    them so; the line says it)."""
    lines = (live_line(report.alias(model), spent) for model, spent in report.costs.items())
    return [line for line in lines if line]


def _cost_table(report: Report) -> Table:
    costs = Table(title="tokens and cost (per condition for priced models)", box=box.SIMPLE_HEAD, pad_edge=False)
    costs.add_column("model", no_wrap=True)
    costs.add_column("condition", overflow="fold")
    for column in ("prompt", "completion", "reasoning", "USD"):
        costs.add_column(column, justify="right", no_wrap=True)
    for model, spent in report.costs.items():
        alias = escape(report.alias(model))
        # Per-condition rows for priced models only: for the others, tokens per condition are in JSON/HTML.
        for label, row in spent["rows"].items() if spent["usd"] is not None else ():
            name, _, variant = label.rpartition("/")
            shown = f"{report.display(name)} {_SHORT_VARIANT.get(variant, variant)}" if name else label
            costs.add_row(
                alias,
                escape(shown),
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"{row['reasoning_tokens']:,}",
                _usd(row["usd"]),
            )
        costs.add_row(
            f"[bold]{alias}[/bold]",
            "[bold]total[/bold]",
            f"{spent['prompt_tokens']:,}",
            f"{spent['completion_tokens']:,}",
            f"{spent['reasoning_tokens']:,}",
            f"[bold]{_usd(spent['usd'])}[/bold]",
            end_section=True,
        )
    return costs


def _print_ratings(report: Report, console: Console) -> None:
    ratings = report.ratings or {}
    title = f"human ratings and consistency ({report.metric} metric)"
    columns = [
        _Column("label", [row["label"] for row in ratings["labels"]], justify="left"),
        _Column("rating", [f"{row['mean']:.2f}" for row in ratings["labels"]]),
        _Column("n", [str(row["n"]) for row in ratings["labels"]]),
        _Column("condition", [row["display"] for row in ratings["labels"]], justify="left", drop=2),
        _Column("CoT", [_SHORT_VARIANT.get(row["variant"], row["variant"]) for row in ratings["labels"]], drop=1),
        _Column("consistency", [_compact(row["consistency"]) for row in ratings["labels"]]),
    ]
    if ratings["labels"]:
        console.print(_fitted(console, escape(title), columns)[0])
        criteria = ", ".join(ratings["criteria"])
        over = "the ratings" if ratings["criteria"] == ["rating"] else escape(criteria)
        console.print(f"[dim]rating: mean of {over}; n: ratings of the label[/dim]")
    found = ratings["correlation"]
    if found:
        console.print(
            f"correlation of mean rating with consistency: Pearson {_signed(found['pearson'])}, Spearman "
            f"{_signed(found['spearman'])}, Kendall {_signed(found['kendall'])} (n = {ratings['n']})"
        )
    for note in ratings["notes"]:
        console.print(f"[yellow]{escape(note)}[/yellow]")


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _print_notes(report: Report, console: Console) -> None:
    if report.failures:
        console.print(f"[red]{len(report.failures)} failed trial(s)[/red], e.g. {escape(report.failures[0])}")
    if report.truncated:
        cut = escape(", ".join(f"{report.display(label)} {n}" for label, n in report.truncated.items()))
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


def _print_legend(report: Report, console: Console) -> None:
    """alias = [models] name (model id), then each ensemble's members; only entries that say more than the alias."""
    lines = []
    for entry in report.legend:
        named = entry["name"] if entry["name"] != entry["alias"] else ""  # the alias is the name: said once
        if "model" in entry:
            what = entry["model"] if entry["model"] != entry["name"] else ""
            shown = f"{named} ({what})" if named and what else named or what
        else:
            members = f"{', '.join(entry['generators'])} propose, {', '.join(entry['evaluators'])} picks"
            what = members if entry["generators"] else ""
            shown = f"{named}: {what}" if named and what else named or what
        if shown:
            lines.append((entry["alias"], shown))
    if not lines:
        return
    legend = Table.grid(padding=(0, 1))
    legend.add_column(no_wrap=True, style="bold")
    legend.add_column(overflow="fold")
    for alias, shown in lines:
        legend.add_row(escape(alias), escape(shown))
    console.print("[dim]aliases:[/dim]")
    console.print(legend)


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
        f"<h1>{e(report.study)}</h1><p>Consistency metric: <b>{e(report.metric)}</b>: "
        f"{e(METRIC_DEFINITIONS[report.metric])}. {e(BREAKDOWN_DEFINITION)}.</p>",
    ]
    parts += _html_consistency(report)
    for variant, grid in report.matrix.items():
        parts += _html_matrix(variant, grid)
    parts += _html_accuracy(report)
    if report.ensembles:
        parts += _html_ensembles(report)
    if _has_costs(report):
        parts += _html_costs(report)
    if report.ratings:
        parts += _html_ratings(report)
    parts += _html_legend(report)
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
            f"<tr><td class=l>{html.escape(c.display or c.name)}</td><td class=l>{html.escape(c.variant)}</td>"
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
    sources = grid.get("source_aliases") or grid["sources"]
    rows = list(zip(sources, grid["values"], strict=True))
    return _heat_table(caption, "source", list(grid.get("target_aliases") or grid["targets"]), rows)


def _html_accuracy(report: Report) -> list[str]:
    evaluators = sorted({ev for per in report.accuracy.values() for ev in per})
    rows = []
    for label, per in report.accuracy.items():
        name, _, variant = label.rpartition("/")
        rows.append((f"{report.display(name)}/{variant}", [per.get(ev) for ev in evaluators]))
    caption = f"Accuracy per evaluator ({html.escape(ACCURACY_DEFINITION)})"
    return _heat_table(caption, "condition/variant", [report.alias(ev) for ev in evaluators], rows)


def _html_ratings(report: Report) -> list[str]:
    e = html.escape
    ratings = report.ratings or {}
    parts = [
        f"<table><caption>Human ratings (mean over {e(', '.join(ratings['criteria']))}) and consistency "
        f"({e(report.metric)})</caption><tr><th class=l>label</th><th>mean rating</th><th>n ratings</th>"
        "<th class=l>condition</th><th class=l>variant</th><th>consistency</th></tr>"
    ]
    for row in ratings["labels"]:
        parts.append(
            f"<tr><td class=l>{e(row['label'])}</td><td>{row['mean']:.2f}</td><td>{row['n']}</td>"
            f"<td class=l>{e(row['display'])}</td><td class=l>{e(row['variant'])}</td>"
            f"<td>{_fmt(row['consistency'])}</td></tr>"
        )
    parts.append("</table>")
    found = ratings["correlation"]
    if found:
        parts.append(
            f"<p>Pearson {_fmt(found['pearson'])}, Spearman {_fmt(found['spearman'])}, Kendall "
            f"{_fmt(found['kendall'])} (n = {ratings['n']})</p>"
        )
    parts.extend(f"<p><b>{e(note)}</b></p>" for note in ratings["notes"])
    return parts


def _html_legend(report: Report) -> list[str]:
    e = html.escape
    rows = []
    for entry in report.legend:
        what = entry.get("model") or (
            f"{', '.join(entry['generators'])} propose, {', '.join(entry['evaluators'])} picks"
            if entry.get("generators")
            else ""
        )
        rows.append(
            f"<tr><td class=l>{e(entry['alias'])}</td><td class=l>{e(entry['name'])}</td>"
            f"<td class=l>{e(what)}</td></tr>"
        )
    if not rows:
        return []
    head = "<tr><th class=l>alias</th><th class=l>name</th><th class=l>model / members</th></tr>"
    return [f"<table><caption>Aliases</caption>{head}", *rows, "</table>"]


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
    parts.extend(f"<p><b>{e(line)}</b></p>" for line in _live_lines(report))
    return parts
