"""The terminal report at 80 columns and beyond: model aliases (config, stored with the study, shown by every
report), tables that drop optional columns or split rather than wrap a number, and the plan table of a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from cotbridge.analysis.render import render_json, render_table
from cotbridge.analysis.report import Report, build_report
from cotbridge.cli import ProgressView
from cotbridge.errors import ConfigError
from cotbridge.study import parse_study
from cotbridge.study.config import default_alias
from cotbridge.study.phases import Progress as StudyProgress
from cotbridge.study.results import ResultsDB, TrialRow
from cotbridge.study.runner import stored_config

STUDY = """
[study]
name = "names"
dataset = "builtin:arithmetic"
conditions = ["empty", "transfer"]

[models.{first}]
model = "local/smollm2-135m"
{alias}

[models.nemotron-research-reasoning-qwen]
model = "vllm/nvidia/Nemotron-Research-Reasoning-Qwen-1.5B"
alias = "NRR"
"""


def test_aliases_default_to_a_short_unique_name() -> None:
    config = parse_study(STUDY.format(first="smol", alias=""))
    assert config.aliases == {"smol": "smol", "nemotron-research-reasoning-qwen": "NRR"}
    # Stored with the study (so `report` needs no flag), and out of every model's own dump (fingerprints).
    stored = stored_config(config)
    assert stored["aliases"] == config.aliases and "alias" not in stored["models"]["smol"]
    config = parse_study(STUDY.format(first="deepseek-r1-distill-qwen", alias=""))
    assert config.aliases["deepseek-r1-distill-qwen"] == "deepseek-r1-"
    assert default_alias("vllm/Qwen/QwQ-32B", set()) == "QwQ-32B"
    assert default_alias("a-very-long-model-name", {"a-very-long-"}) == "a-very-long2"


def test_a_shared_alias_is_refused_naming_the_models() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_study(STUDY.format(first="smol", alias='alias = "NRR"'), "names.toml")
    message = str(caught.value)
    assert "names.toml" in message and "aliases must be unique" in message
    assert "[models.smol]" in message and "[models.nemotron-research-reasoning-qwen]" in message
    with pytest.raises(ConfigError, match="alias"):
        parse_study(STUDY.format(first="smol", alias='alias = "far-too-long-for-a-column"'))


def _trial(condition: str, evaluator: str, source: str, pid: str, answer: str, tokens: int = 0) -> TrialRow:
    return TrialRow(
        study="names",
        condition=condition,
        variant="full",
        evaluator=evaluator,
        source=source,
        sample_index=0,
        problem_id=pid,
        mode="prefill",
        text=answer,
        answer=answer,
        normalized=answer,
        correct=answer == "1",
        prompt_tokens=tokens,
        completion_tokens=tokens,
    )


LONG = "nemotron-research-reasoning-qwen"


def _stored_report(tmp_path: Path, alias: str, rows: list[TrialRow]) -> Report:
    """The report of the study STUDY (first model `smol` with the given alias line) holding `rows`."""
    results = ResultsDB(tmp_path / "r.db")
    try:
        results.save_study("names", stored_config(parse_study(STUDY.format(first="smol", alias=alias))))
        results.put_trials(rows)
        return build_report(results, "names", "strict")
    finally:
        results.close()


def test_reports_show_the_stored_aliases(tmp_path: Path) -> None:
    rows = []
    for pid, (x, y) in {"p1": ("1", "1"), "p2": ("1", "2")}.items():
        rows += [_trial("empty", "smol", "", pid, x, tokens=5), _trial("empty", LONG, "", pid, y)]
        rows += [_trial("transfer", "smol", LONG, pid, x), _trial("transfer", LONG, LONG, pid, y)]
    report = _stored_report(tmp_path, 'alias = "S"', rows)
    console = Console(record=True, width=80, emoji=False)
    render_table(report, console)
    text = console.export_text()
    assert "transfer:NRR" in text and LONG not in text.split("aliases:")[0]
    assert re.search(r"^S +smol \(local/smollm2-135m\)", text, re.M)  # the legend: alias, [models] name, model id
    assert "tokens and cost" in text  # counted tokens keep their table
    data = json.loads(render_json(report))
    assert [c["display"] for c in data["conditions"]] == ["empty", "transfer:NRR"]
    assert data["conditions"][1]["name"] == f"transfer:{LONG}"


def test_names_with_brackets_are_shown_as_written(tmp_path: Path) -> None:
    rows = []
    for pid in ("p1", "p2"):
        rows += [_trial("transfer", "smol", LONG, pid, "1"), _trial("transfer", LONG, LONG, pid, "1")]
        rows += [_trial("transfer", "smol", "smol", pid, "1"), _trial("transfer", LONG, "smol", pid, "2")]
    report = _stored_report(tmp_path, 'alias = "[b]S"', rows)
    console = Console(record=True, width=120, emoji=False)
    render_table(report, console)
    consistency = console.export_text().split("strict metric:")[0]
    assert "transfer:[b]S" in consistency  # not read as rich markup (bold) and dropped


def test_wide_grids_split_instead_of_wrapping() -> None:
    evaluators = {f"evaluator-{i:02d}": i / 20 for i in range(12)}
    report = Report(study="s", metric="strict", accuracy={"empty/full": evaluators, "default/full": evaluators})
    console = Console(record=True, width=80, emoji=False)
    render_table(report, console)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "accuracy per evaluator (continued)" in lines
    assert all(f"evaluator-{i:02d}" in "\n".join(lines) for i in range(12))  # every column, none cut
    assert "…" not in "\n".join(lines)


def test_the_plan_table_fits_80_columns() -> None:
    row = {
        "name": "smollm2",
        "model": "local/smollm2-135m",
        "roles": "generator, evaluator",
        "thinking format": "think-tags",
        "CoT visible": "full",
        "thinking": "asked with a <think> prefill after the chat template's assistant turn",
        "greedy": "yes",
        "capabilities from": "known family",
        "injection": "prefill",
        "USD per M in/out": "-",
    }
    plan = [row, {**row, "name": "gemma3", "model": "local/gemma3-270m"}, {**row, "name": "third"}, {**row}]
    console = Console(record=True, width=80, emoji=False)
    with Progress(console=console, transient=True) as progress:
        ProgressView(progress)(StudyProgress(phase="plan", plan=plan))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "local/smollm2-135m" in text and "local/gemma3-270m" in text and "…" not in text
    assert "think-tags" in text and "USD per M in/out" in text
