"""Report data (condition keys, summaries, ensemble runs, costs) and its renderers, on a small hand-made results DB."""

from __future__ import annotations

import ast
import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from cotbridge.analysis import metrics
from cotbridge.analysis.metrics import AnswerRow
from cotbridge.analysis.render import render_csv, render_html, render_json, render_table
from cotbridge.analysis.report import ConditionKey, build_report
from cotbridge.cot.ensemble import Candidate, EnsembleEnd, EnsembleTrace, Proposer, Step, StepChoice
from cotbridge.errors import ConfigError
from cotbridge.records import Condition
from cotbridge.study import parse_study, run_study
from cotbridge.study.results import ExplanationRow, ResultsDB, TrialRow
from tests.test_cli import run

ANALYSIS = Path(__file__).resolve().parent.parent / "cotbridge" / "analysis"


def trial(condition: str, evaluator: str, source: str = "", index: int = 0, **kw: Any) -> TrialRow:
    values: dict[str, Any] = {
        "study": "s",
        "condition": condition,
        "variant": "full",
        "evaluator": evaluator,
        "source": source,
        "sample_index": index,
        "problem_id": "p1",
        "mode": "prefill",
        "text": "t",
        "answer": "1",
        "normalized": "1",
        "correct": True,
    }
    values.update(kw)
    return TrialRow(**values)


def test_condition_key_labels_and_order() -> None:
    keys = {
        "empty": ConditionKey.of(trial("empty", "a")),
        "default": ConditionKey.of(trial("default", "a", "a")),
        "sampled": ConditionKey.of(trial("sampled", "a", "a", 0)),
        "sampled#2": ConditionKey.of(trial("sampled", "a", "a", 2)),
        "sampled#10": ConditionKey.of(trial("sampled", "a", "a", 10)),
        "transfer:b": ConditionKey.of(trial("transfer", "a", "b")),
        "ensemble:mix": ConditionKey.of(trial("ensemble", "a", "mix")),
    }
    assert {label: key.label for label, key in keys.items()} == {label: label for label in keys}
    # The evaluator's own name as a default trial's source does not split the condition per evaluator.
    assert ConditionKey.of(trial("default", "b", "b")) == keys["default"]
    assert keys["transfer:b"] == ConditionKey(Condition.TRANSFER, "b")
    ordered = sorted(keys.values(), key=lambda k: k.sort_key)
    assert [k.label for k in ordered] == list(keys)  # the paper's order; samples by number, not by text
    with pytest.raises(ConfigError, match="'odd' is not one of"):
        ConditionKey.of(trial("odd", "a"))


def _trace(steps: int, ended: EnsembleEnd, fallback_at: int | None) -> str:
    run = EnsembleTrace(ended=ended, closed_by=["g1"] if ended.complete else [])
    for k in range(steps):
        candidates = [Candidate("x.", [Proposer("g1", 0), Proposer("g2", 1)]), Candidate("y.", [Proposer("g2", 0)])]
        note = StepChoice.FALLBACK if k == fallback_at else StepChoice.BEST
        run.steps.append(Step(k, candidates, k % 2, note, 0.1, 2, 0))
    return json.dumps(run.as_dict())


@pytest.fixture
def results(tmp_path: Path) -> Iterator[ResultsDB]:
    db = ResultsDB(tmp_path / "r.db")
    db.save_study("s", {"models": {"a": {"price": {"input": 1.0, "output": 2.0}}, "b": {}}})
    rows = []
    for pid, (x, y) in {"p1": ("1", "1"), "p2": ("1", "2"), "p3": ("2", "2"), "p4": ("3", None)}.items():
        for evaluator, answer in (("a", x), ("b", y)):
            normalized = None if answer == "3" else answer
            correct = None if answer is None else answer == "1"
            common: dict[str, Any] = {"problem_id": pid, "answer": answer, "normalized": normalized, "correct": correct}
            rows += [
                trial("empty", evaluator, mode="own", prompt_tokens=10, completion_tokens=5, **common),
                trial("sampled", evaluator, evaluator, 10, **common),
                trial("sampled", evaluator, evaluator, 2, **common),
                trial("transfer", evaluator, "b", mode="context", **common),
                trial("transfer", evaluator, "a", variant="without_answer", **common),
                trial("ensemble", evaluator, "mix", **common),
            ]
    db.put_trials(rows)
    traces = [(3, EnsembleEnd.CHOSEN_CLOSED, None), (5, EnsembleEnd.MAX_STEPS, 0), (2, EnsembleEnd.MAX_STEPS, 1)]
    db.put_explanations(
        [
            ExplanationRow(
                study="s",
                problem_id=f"p{i}",
                source="mix",
                kind="ensemble",
                sample_index=0,
                variant="full",
                cot="x.",
                final_text="1",
                answer="1",
                normalized="1",
                correct=True,
                truncated=False,
                trace=_trace(*spec),
                prompt_tokens=7,
                completion_tokens=3,
            )
            for i, spec in enumerate(traces, 1)
        ]
    )
    yield db
    db.close()


def test_build_report(results: ResultsDB) -> None:
    report = build_report(results, None, "strict")
    names = [(c.name, c.variant) for c in report.conditions]
    assert names == [
        ("empty", "full"),
        ("sampled#2", "full"),
        ("sampled#10", "full"),
        ("transfer:a", "without_answer"),
        ("transfer:b", "full"),
        ("ensemble:mix", "full"),
    ]
    empty = report.conditions[0]
    # p1 agree on "1" (correct), p2 differ, p3 agree on "2" (wrong), p4 invalid (left out of 4 shared problems).
    assert (empty.mean, empty.pairs, empty.coverage, empty.problems) == (pytest.approx(2 / 3), 1, 0.75, 4)
    assert (empty.consistent_correct, empty.consistent_wrong) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert report.accuracy["empty/full"] == {"a": 0.5, "b": 0.25}
    assert list(report.accuracy)[1] == "sampled#2/full"
    assert report.matrix["full"] == {
        "metric": "accuracy",
        "sources": ["b"],
        "targets": ["a", "b"],
        "values": [[0.5, 0.25]],
        "source_aliases": ["b"],
        "target_aliases": ["a", "b"],
    }
    assert report.matrix["without_answer"]["sources"] == ["a"]
    mix = report.ensembles["mix"]
    # Chosen: candidate 0 (g1 and g2) on even steps, candidate 1 (g2) on odd ones: 6 even and 4 odd steps.
    assert mix["chosen_share"] == {"g1": pytest.approx(6 / 16), "g2": pytest.approx(10 / 16)}
    assert (mix["runs"], mix["steps_median"], mix["steps_max"], mix["guard_fallbacks"]) == (3, 3.0, 5, 2)
    assert mix["ended"] == {"max steps": 2, "the chosen sentence closed the reasoning": 1}
    assert report.modes == {"a": {"context": 4, "own": 4, "prefill": 16}, "b": {"context": 4, "own": 4, "prefill": 16}}
    spent = report.costs["a"]
    assert spent["rows"]["empty/full"] == {
        "prompt_tokens": 40,
        "completion_tokens": 20,
        "reasoning_tokens": 0,
        "usd": pytest.approx(80 / 1e6),
    }
    assert report.costs["b"]["usd"] is None
    assert report.costs["mix"]["rows"]["CoTs (ensemble, full)"]["prompt_tokens"] == 21
    assert report.failures == []
    with pytest.raises(ConfigError, match="no study 'x'"):
        build_report(results, "x")


def test_renderers(results: ResultsDB) -> None:
    report = build_report(results, "s", "paper")
    console = Console(record=True, width=200)
    render_table(report, console)
    text = console.export_text()
    assert "s: consistency (paper metric)" in text and "sampled#10" in text and "transfer matrix (full CoT)" in text
    assert "ensemble mix: 3 runs, steps median 3 max 5; chosen sentences: g1 38%, g2 62%; guard fallbacks 2" in text
    assert "trials per injection mode: a: context 4, own 4, prefill 16" in text
    cut = "ensemble mix: 2 of 3 CoTs truncated (max_steps 2)"
    assert cut in text and report.ensembles["mix"]["truncated_by"] == {"max_steps": 2}
    data = json.loads(render_json(report))
    assert data["failures"] == []
    assert [c["name"] for c in data["conditions"]][:3] == ["empty", "sampled#2", "sampled#10"]
    assert data == json.loads(json.dumps(report.as_json()))
    assert (data["ensembles"]["mix"]["truncated"], data["ensembles"]["mix"]["truncation"]) == (2, cut)
    table = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [(r["name"], r["variant"]) for r in table] == [(c.name, c.variant) for c in report.conditions]
    page = render_html(report)
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    assert "<td class=l>transfer:b</td>" in page and "Tokens and cost per model and condition" in page
    assert f"<b>{cut}</b>" in page and "<b>mix</b>: 3 runs" in page


def test_every_number_says_its_metric(results: ResultsDB) -> None:
    report = build_report(results, "s", "paper")
    (first, *_) = json.loads(render_json(report))["conditions"]
    assert first["metric"] == "paper" and first["breakdown"]["metric"] == "strict"
    assert set(first["breakdown"]) == {"metric", "coverage", "consistent_correct", "consistent_wrong", "inconsistent"}
    header = next(csv.reader(io.StringIO(render_csv(report))))
    assert {"paper_mean", "paper_coverage", "strict_consistent_correct", "strict_coverage"} <= set(header)
    assert not {"mean", "coverage", "consistent_correct"} & set(header), "no column without its metric"
    page = render_html(report)
    assert "<th>mean (paper)</th>" in page and "<th>inconsistent (strict)</th>" in page
    # the breakdown's coverage is the strict one, not the paper's
    summary = report.conditions[0]
    assert first["breakdown"]["coverage"] == summary.breakdown_coverage


def test_report_data_needs_no_renderer_and_metrics_do_no_io() -> None:
    modules = "{'rich', 'html', 'cotbridge.analysis.render'}"
    code = f"import sys, cotbridge.analysis.report; print(sorted({modules} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    tree = ast.parse((ANALYSIS / "metrics.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections", "dataclasses", "itertools", "math", "numpy", "typing"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not calls & {"open", "print", "input"}


def test_a_study_with_one_evaluator_reports_every_condition(tmp_path: Path) -> None:
    db = ResultsDB(tmp_path / "one.db")
    db.save_study("s", {"models": {"a": {}}})
    answers = {"p1": ("1", True), "p2": ("2", False)}
    db.put_trials(
        [
            trial(condition, "a", source, problem_id=pid, answer=x, normalized=x, correct=ok)
            for condition, source in (("empty", ""), ("transfer", "a"))
            for pid, (x, ok) in answers.items()
        ]
    )
    db.close()
    results = ResultsDB(tmp_path / "one.db", read_only=True)
    report = build_report(results, None, "strict")
    results.close()
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [(r["name"], r["variant"]) for r in rows] == [("empty", "full"), ("transfer:a", "full")]
    for row in rows:  # no pair to compare: consistency left empty, the rest there
        assert (row["strict_mean"], row["strict_ci_low"], row["strict_inconsistent"]) == ("", "", "")
        assert (row["strict_pairs"], row["evaluators"], row["problems"], row["accuracy_a"]) == ("0", "1", "2", "0.5")
    data = json.loads(render_json(report))
    assert [(c["name"], c["mean"], c["evaluators"]) for c in data["conditions"]] == [
        ("empty", None, 1),
        ("transfer:a", None, 1),
    ]
    page = render_html(report)
    assert "<td class=l>empty</td><td class=l>full</td>" in page and "<td class=l>transfer:a</td>" in page
    console = Console(record=True, width=200)
    render_table(report, console)
    consistency = console.export_text().split("same✓ / same✗")[0]
    assert "empty" in consistency and "transfer:a" in consistency
    result = run("report", str(tmp_path / "one.db"), "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("name,variant,metric,") and lines[1].startswith("empty,full,")


ENSEMBLES = """
[study]
name = "cut"
dataset = "builtin:arithmetic"
sample = 3
conditions = ["ensemble"]
answer_removal = "none"

[study.decoding]
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"

[ensembles.short]
generators = ["smol"]
evaluators = ["smol"]
candidates = 2
max_sentence_tokens = 24
max_steps = 2

[ensembles.tight]
generators = ["smol"]
evaluators = ["smol"]
candidates = 2
max_sentence_tokens = 24
max_cot_tokens = 1
"""


async def test_every_report_says_how_many_ensemble_cots_were_truncated(llama_server: str, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    summary = await run_study(parse_study(ENSEMBLES.format(llama=llama_server)), db)
    assert not summary.failures
    results = ResultsDB(db, read_only=True)
    stored = {"short": [], "tight": []}  # the truncated flags the run stored with each ensemble CoT
    for row in results.explanations("cut"):
        if row.kind == "ensemble" and row.variant == "full":
            stored[row.source].append(row.truncated)
    report = build_report(results, "cut", "strict")
    results.close()
    short, tight = report.ensembles["short"], report.ensembles["tight"]
    assert (short["runs"], tight["runs"]) == (3, 3)
    assert short["truncated"] == sum(stored["short"]) and tight["truncated"] == sum(stored["tight"])
    assert set(short["truncated_by"]) <= {"max_steps", "no usable candidate"} and short["truncated_by"]["max_steps"]
    assert set(tight["truncated_by"]) <= {"max_cot_tokens", "no usable candidate"}
    assert tight["truncated_by"]["max_cot_tokens"]
    lines = []
    for name, ens in (("short", short), ("tight", tight)):
        causes = ", ".join(f"{cause} {n}" for cause, n in ens["truncated_by"].items())
        lines.append(f"ensemble {name}: {ens['truncated']} of 3 CoTs truncated ({causes})")
    console = Console(record=True, width=200)
    render_table(report, console)
    shown = {
        "table": console.export_text(),
        "json": "\n".join(e["truncation"] for e in json.loads(render_json(report))["ensembles"].values()),
        "html": render_html(report),
    }
    for renderer, text in shown.items():
        assert all(line in text for line in lines), (renderer, lines, text)


# -- the report at scale: every pair judged at once, resamples drawn in chunks ------------------------------------

_ANSWERS = st.sampled_from([None, "5", "5.0", "6", "N/A", "not defined here"])


@st.composite
def _conditions(draw: st.DrawFn) -> dict[str, dict[str, AnswerRow]]:
    evaluators = draw(st.integers(2, 4))
    condition: dict[str, dict[str, AnswerRow]] = {}
    for e in range(evaluators):
        rows = {}
        for p in draw(st.sets(st.integers(0, 7), max_size=8)):
            answer = draw(_ANSWERS)
            normalized = None if answer is None or not answer[0].isdigit() else answer.split(".")[0]
            correct = draw(st.sampled_from([None, True, False]))
            rows[f"p{p}"] = AnswerRow(f"p{p}", answer, normalized, correct)
        condition[f"e{e}"] = rows
    return condition


@settings(max_examples=200, deadline=None)
@given(_conditions(), st.sampled_from(["paper", "strict"]))
def test_pair_tables_judge_every_pair_as_the_one_pair_judges_do(condition: Any, metric: Any) -> None:
    tables = metrics._pair_tables(condition, metric)
    judge = metrics._paper_judge if metric == "paper" else metrics._strict_judge
    for i, (a, b) in enumerate(tables.pairs):
        for j, pid in enumerate(tables.problem_ids):
            both = pid in condition[a] and pid in condition[b]
            compared, consistent, both_correct = judge(condition[a][pid], condition[b][pid]) if both else (0, 0, 0)
            assert tables.present[i, j] == both
            assert tables.compared[i, j] == compared and tables.consistent[i, j] == consistent
            assert tables.consistent_correct[i, j] == (consistent and both_correct)


def test_bootstrap_in_chunks_draws_what_one_draw_would(monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    rng = random.Random(1)
    condition = {
        e: {f"p{i}": AnswerRow(f"p{i}", a, a, a == "4") for i in range(300) for a in [rng.choice("3445")]}
        for e in ("a", "b", "c")
    }
    whole = metrics.consistency_ci(condition, metric="strict", n_resamples=500, seed=3)
    paired_whole = metrics.paired_bootstrap(condition, {**condition, "a": condition["b"]}, n_resamples=500, seed=3)
    monkeypatch.setattr(metrics, "_DRAWS_PER_CHUNK", 7 * 300)  # 7 resamples per chunk, the last one shorter
    assert metrics.consistency_ci(condition, metric="strict", n_resamples=500, seed=3) == whole
    assert metrics.paired_bootstrap(condition, {**condition, "a": condition["b"]}, n_resamples=500, seed=3) == (
        paired_whole
    )
