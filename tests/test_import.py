"""The paper's released outputs imported, re-scored and reported; the paper's metric and the strict one differ only
where the paper's own comparison is flawed (Pal, Bau, Singh, arXiv 2601.11517)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cotbridge.analysis.metrics import has_paper_error_marker, paper_consistency, strict_consistency
from cotbridge.analysis.report import ConditionKey, build_report, gather
from cotbridge.records import Condition
from cotbridge.study.results import ResultsDB
from tests.conftest import SHARED_DATA

GENEX = SHARED_DATA / "genex-medcalc"


@pytest.fixture(scope="module")
def genex_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GENEX.is_dir():
        pytest.skip(f"the paper's released outputs are not at {GENEX}")
    db = tmp_path_factory.mktemp("genex") / "genex.db"
    result = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "import", "genex", str(GENEX), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 86 files" in result.stdout
    return db


def test_import_counts(genex_db: Path) -> None:
    results = ResultsDB(genex_db)
    trials = list(results.trials("genex"))
    results.close()
    # 5 evaluators x (empty, default, sampled x2, ensembles x3, transfer from 9 sources, default w/o answer) x 100
    assert len(trials) == 5 * 100 * (1 + 1 + 2 + 3 + 9 + 1)
    # Transfer rows that crashed in the reference run have no answer; they are kept, as missing answers.
    assert sum(1 for t in trials if t.condition == "transfer" and t.answer is None) == 295


def test_each_source_cot_is_kept_once_and_from_a_copy_that_has_it(genex_db: Path) -> None:
    results = ResultsDB(genex_db)
    sources = [e for e in results.explanations("genex") if e.kind == "greedy" and e.variant == "without_answer"]
    results.close()
    # 9 sources x 100 problems, each riding along in 5 transfer files; some copies lost the CoT in the reference run
    assert len(sources) == 900 and len({(e.source, e.problem_id) for e in sources}) == 900
    copies: dict[tuple[str, str], list[bool]] = {}
    for path in (GENEX / "outputs").glob("*_thoughts_to_*_zero_shot_without_answer.jsonl"):
        source = path.name.split("_thoughts_to_")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            has_cot = bool((row.get("LLM Raw Thinking") or "").strip())
            copies.setdefault((source, str(row["Row Number"])), []).append(has_cot)
    without = {(e.source, e.problem_id) for e in sources if not (e.cot or "").strip()}
    assert without == {key for key, found in copies.items() if not any(found)}, "a copy with the CoT must win"


def test_paper_report_json(genex_db: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "report", str(genex_db), "--metric", "paper", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    by_name = {(c["name"], c["variant"]): c for c in data["conditions"]}
    assert ("empty", "full") in by_name and ("transfer:Qwen_QwQ-32B", "without_answer") in by_name
    assert all(c["pairs"] == 10 and c["evaluators"] == 5 and c["problems"] == 100 for c in data["conditions"])
    assert all(c["ci_low"] <= c["mean"] <= c["ci_high"] for c in data["conditions"])
    # Transferred CoTs make evaluators agree more than no CoT at all (the paper's headline).
    assert by_name[("transfer:Qwen_QwQ-32B", "without_answer")]["mean"] > by_name[("empty", "full")]["mean"]


def test_strict_differs_from_paper_only_where_the_paper_is_flawed(genex_db: Path) -> None:
    results = ResultsDB(genex_db)
    data = gather(list(results.trials("genex")))
    report_paper = build_report(results, "genex", "paper")
    report_strict = build_report(results, "genex", "strict")
    results.close()
    reasons: dict[str, int] = {}
    for condition in data.values():
        for a, b in itertools.combinations(sorted(condition), 2):
            for pid in condition[a].keys() & condition[b].keys():
                x, y = condition[a][pid], condition[b][pid]
                if has_paper_error_marker(x.answer) or has_paper_error_marker(y.answer):
                    continue  # the paper skips these; strict treats them as invalid answers: both leave them out
                paper_agree = (x.answer or "") == (y.answer or "") or (x.correct is True and y.correct is True)
                compared = x.normalized is not None and y.normalized is not None
                strict_agree = compared and x.normalized == y.normalized
                if not compared:
                    if paper_agree:
                        reason = "crashed" if x.answer is None or y.answer is None else "unparseable but equal/correct"
                        reasons[reason] = reasons.get(reason, 0) + 1
                    continue
                if paper_agree and not strict_agree:
                    assert x.correct and y.correct and x.answer != y.answer
                    reasons["both correct, different values"] = reasons.get("both correct, different values", 0) + 1
                elif strict_agree and not paper_agree:
                    assert x.answer != y.answer  # e.g. "5" vs "5.0": equal as numbers
                    reasons["equal values written differently"] = reasons.get("equal values written differently", 0) + 1
    assert reasons.get("both correct, different values", 0) > 0
    assert reasons.get("crashed", 0) > 0
    assert reasons.get("equal values written differently", 0) > 0
    # And the two reports really differ.
    paper = {(c.name, c.variant): c.mean for c in report_paper.conditions}
    strict = {(c.name, c.variant): c.mean for c in report_strict.conditions}
    assert paper.keys() == strict.keys() and any(abs(paper[k] - strict[k]) > 0.01 for k in paper)


def test_paper_metric_matches_a_by_position_reading_of_the_definition(genex_db: Path) -> None:
    results = ResultsDB(genex_db)
    data = gather(list(results.trials("genex")))
    results.close()
    condition = data[(ConditionKey(Condition.TRANSFER, "Qwen_QwQ-32B"), "without_answer")]
    values = []
    for a, b in itertools.combinations(sorted(condition), 2):
        consistent = total = 0
        for pid in condition[a]:
            x, y = condition[a][pid], condition[b][pid]
            if has_paper_error_marker(x.answer) or has_paper_error_marker(y.answer):
                continue
            total += 1
            consistent += (x.answer or "") == (y.answer or "") or (x.correct is True and y.correct is True)
        values.append(consistent / total)
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    result = paper_consistency(condition)
    assert result.mean == pytest.approx(mean) and result.std == pytest.approx(std)
    assert strict_consistency(condition).coverage < 1.0


# The paper's MedCalc consistency table (Pal, Bau, Singh, arXiv 2601.11517; /work/shared/PAPER.md), by the aliases
# `import genex` gives the release's models: without answer where the paper reports it, empty with no CoT at all.
PAPER_TABLE = {
    ("empty", "full"): 0.302,
    ("default", "without_answer"): 0.249,
    ("sampled", "without_answer"): 0.287,
    ("transfer:NRR", "without_answer"): 0.320,
    ("transfer:OpenT", "without_answer"): 0.487,
    ("transfer:OSS", "without_answer"): 0.482,
    ("transfer:QwQ", "without_answer"): 0.638,
    ("transfer:DAPO", "without_answer"): 0.563,
    ("ensemble:QwQ+DAPO/OSS", "without_answer"): 0.657,
    ("ensemble:QwQ+OpenT/OSS", "without_answer"): 0.654,
    ("ensemble:QwQ+OSS/DAPO", "without_answer"): 0.552,
}


def report_cli(db: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cotbridge.cli", "report", str(db), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": str(columns)},
    )


def test_the_papers_table_reproduces_by_alias(genex_db: Path) -> None:
    results = ResultsDB(genex_db, read_only=True)
    report = build_report(results, "genex", "paper")
    results.close()
    shown = {(c.display, c.variant): round(c.mean, 3) for c in report.conditions}
    assert {key: shown.get(key) for key in PAPER_TABLE} == PAPER_TABLE
    # Aliases are display: the stored names stay the release's.
    assert ("transfer:Qwen_QwQ-32B", "without_answer") in {(c.name, c.variant) for c in report.conditions}


@pytest.fixture(scope="module")
def narrow(genex_db: Path) -> str:
    result = report_cli(genex_db, "--metric", "paper")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_report_is_legible_at_80_columns(narrow: str) -> None:
    lines = narrow.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    numbers = re.compile(r"(\d?\.\d{3})±(\d?\.\d{3})")
    for (display, _variant), mean in PAPER_TABLE.items():
        rows = [line for line in lines if line.split()[:1] == [display] and numbers.search(line)]
        assert len(rows) == 1, (display, rows)  # one line per condition, mean±std whole on it
        means = [float(m[0]) for m in numbers.findall(rows[0])]
        assert f"{mean:.3f}".lstrip("0") in rows[0] and mean in means
    # The 9 transfer sources and 5 evaluators are told apart by alias, in the matrix too.
    sources = {line.split()[0] for line in lines if line.startswith(" transfer:")}
    assert sources == {
        f"transfer:{a}" for a in ("DAPO", "QwQ", "R1D-G", "Llama-G", "R1D", "Llama", "NRR", "OpenT", "OSS")
    }
    assert re.search(r"^ source +DAPO +QwQ +NRR +OpenT +OSS\s*$", narrow, re.M)
    # Imported outputs count no tokens: no table of zeros. The breakdown waits for a wider console.
    assert "tokens and cost" not in narrow and "same✓" not in narrow.split("paper metric:")[0]
    assert "shows in a wider console" in narrow
    assert "a pair agrees on a problem when the answer strings are identical or both are correct" in " ".join(
        narrow.split()
    )
    # The user study, imported with the outputs: 4 labels, n = 4, and a note that this is too few.
    ratings = narrow.split("human ratings and consistency")[1]
    for label, condition in (
        ("DAPO", "transfer:DAPO"),
        ("OSS", "transfer:OSS"),
        ("QwQ+DAPO/OSS", "ensemble:QwQ+DAPO/OSS"),
    ):
        assert re.search(
            rf"^ {re.escape(label)} +\d\.\d\d +22\d +{re.escape(condition)} +no ans\. +\.\d{{3}}", ratings, re.M
        )
    assert "(n = 4)" in ratings and "too few for a correlation to mean much" in ratings
    assert re.search(r"^NRR +nvidia_Nemotron-Research-Reasoning-Qwen-1\.5B", narrow, re.M)  # the legend


def test_a_wide_console_shows_the_breakdown(genex_db: Path) -> None:
    result = report_cli(genex_db, "--metric", "paper", columns=200)
    assert result.returncode == 0, result.stderr
    head = result.stdout.split("paper metric:")[0]
    assert all(column in head for column in ("same✓", "same✗", "differ", "pairs", "cover"))
    row = next(line for line in head.splitlines() if line.startswith(" transfer:QwQ "))
    assert len(re.findall(r"\d?\.\d{3}", row)) >= 5 and max(len(line) for line in result.stdout.splitlines()) <= 200


def test_report_json_keeps_full_names_beside_aliases(genex_db: Path) -> None:
    result = report_cli(genex_db, "--metric", "paper", "--format", "json")
    data = json.loads(result.stdout)
    legend = {entry["alias"]: entry for entry in data["legend"]}
    assert legend["NRR"]["name"] == "nvidia_Nemotron-Research-Reasoning-Qwen-1.5B"
    assert legend["QwQ+DAPO/OSS"] == {
        "alias": "QwQ+DAPO/OSS",
        "name": "gen_qwq_dapo_eval_oss",
        "generators": ["QwQ", "DAPO"],
        "evaluators": ["OSS"],
    }
    assert len(data["aliases"]) == 11 + 3 and len(set(data["aliases"].values())) == 14
    assert data["definitions"]["paper"].startswith("the paper's rule")
    assert data["ratings"]["n"] == 4 and data["ratings"]["correlation"]["spearman"] == pytest.approx(1.0)


def test_a_users_ratings_csv(genex_db: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.csv"
    mine.write_text("model_label,value\nOSS,2\nOSS,3\nQwQ,4\nQwQ+OSS/DAPO,5\nGPT-9,1\n", encoding="utf-8")
    result = report_cli(genex_db, "--metric", "paper", "--ratings", str(mine))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert re.search(r"OSS 2\.50 2 transfer:OSS no ans\. \.482", text)
    assert re.search(r"QwQ 4\.00 1 transfer:QwQ no ans\. \.638", text)
    assert "(n = 3)" in text and "label(s) GPT-9 name no transfer source or ensemble; aliases: DAPO," in text
    bad = tmp_path / "bad.csv"
    bad.write_text("label,score\nOSS,2\n", encoding="utf-8")
    result = report_cli(genex_db, "--ratings", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}: a ratings CSV needs the columns model_label, value" in " ".join(result.stderr.split())
    bad.write_text("model_label,value\nOSS,good\n", encoding="utf-8")
    result = report_cli(genex_db, "--ratings", str(bad))
    assert result.returncode == 2 and "line 2: value 'good' is not a number" in " ".join(result.stderr.split())
