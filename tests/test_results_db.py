"""The results DB: its schema comes from named migrations (so files of earlier versions open and are upgraded),
it shares a file with the response cache, and rows go in and come back by their dataclass fields."""

from __future__ import annotations

import sqlite3
from dataclasses import fields, replace
from pathlib import Path

import pytest

from cotbridge.cache.sqlite import MIGRATIONS_TABLE
from cotbridge.cache.store import ResponseStore
from cotbridge.records import Condition, Explanation, Score, Usage, Variant
from cotbridge.study.explanations import CotKind, ExplanationSet, StudyCot
from cotbridge.study.results import RESULTS_MIGRATIONS, USAGE_COLUMNS, ExplanationRow, ResultsDB, TrialRow

# The tables as results DBs were made before migrations and before token counts.
OLD_SCHEMA = """
CREATE TABLE studies (name TEXT PRIMARY KEY, config TEXT, created_at FLOAT, updated_at FLOAT);
CREATE TABLE trials (study TEXT, condition TEXT, variant TEXT, evaluator TEXT, source TEXT, sample_index INTEGER,
    problem_id TEXT, mode TEXT, text TEXT, answer TEXT, normalized TEXT, correct INTEGER, prompt_text TEXT,
    error TEXT, created_at FLOAT,
    PRIMARY KEY (study, condition, variant, evaluator, source, sample_index, problem_id));
CREATE TABLE explanations (study TEXT, problem_id TEXT, source TEXT, kind TEXT, sample_index INTEGER, variant TEXT,
    cot TEXT, final_text TEXT, answer TEXT, normalized TEXT, correct INTEGER, truncated INTEGER, prompt_text TEXT,
    removal TEXT, trace TEXT, error TEXT, created_at FLOAT,
    PRIMARY KEY (study, problem_id, source, kind, sample_index, variant));
INSERT INTO studies VALUES ('old', '{}', 1.0, 1.0);
INSERT INTO trials VALUES ('old', 'transfer', 'full', 'a', 'b', 0, 'p1', 'context', 'x', '5', '5', 1, NULL, NULL, 1.0);
INSERT INTO explanations VALUES ('old', 'p1', 'b', 'greedy', 0, 'full', 'cot', 'Answer: 5', '5', '5', NULL, 0, NULL,
    NULL, NULL, NULL, 1.0);
"""


def trial(**changes: object) -> TrialRow:
    row = TrialRow(
        study="s",
        condition=Condition.TRANSFER,
        variant=Variant.WITHOUT_ANSWER,
        evaluator="a",
        source="b",
        sample_index=0,
        problem_id="p1",
        mode="prefill",
        text="Answer: 5",
        answer="5",
        normalized="5",
        correct=True,
        prompt_text="<prompt>",
        prompt_tokens=11,
        completion_tokens=3,
        reasoning_tokens=0,
    )
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def migrations(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY name")]


def test_a_file_of_an_earlier_version_opens_and_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    results = ResultsDB(path)
    (old,) = results.trials("old")
    assert (old.evaluator, old.source, old.correct, old.prompt_tokens) == ("a", "b", True, 0)
    (cot,) = results.explanations("old")
    assert cot.correct is None and cot.truncated is False and cot.reasoning_tokens == 0
    assert results.finished_trials("old") == {("old", "transfer", "full", "a", "b", 0, "p1"): None}
    results.put_trials([trial(study="old")])
    assert {t.mode for t in results.trials("old")} == {"context", "prefill"}
    results.close()
    assert set(USAGE_COLUMNS) <= columns(path, "trials") and set(USAGE_COLUMNS) <= columns(path, "explanations")
    assert migrations(path) == [name for name, _ in RESULTS_MIGRATIONS]
    ResultsDB(path).close()  # opening again applies nothing twice
    assert migrations(path) == [name for name, _ in RESULTS_MIGRATIONS]


def test_results_and_cache_share_a_file_and_its_migrations_table(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    ResponseStore(path).close()
    ResultsDB(path).close()
    ResponseStore(path).close()
    names = migrations(path)
    assert "0001_create_responses" in names and "results_0001_create_tables" in names
    assert len(names) == len(set(names)) == 1 + len(RESULTS_MIGRATIONS)


def test_every_row_field_is_a_column_of_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    ResultsDB(path).close()
    assert {f.name for f in fields(TrialRow)} <= columns(path, "trials")
    assert {f.name for f in fields(ExplanationRow)} <= columns(path, "explanations")
    assert "error" not in columns(path, "explanations")  # the field nothing wrote is gone


def test_a_failed_trial_is_stored_and_not_finished(tmp_path: Path) -> None:
    results = ResultsDB(tmp_path / "r.db")
    results.save_study("s", {"models": {"a": {}}})
    failed = trial(sample_index=1, answer=None, correct=None, error_kind="APITimeoutError", error="no answer in 5 s")
    results.put_trials([trial(fingerprint="f0"), failed])
    assert [t.failed for t in sorted(results.trials("s"), key=lambda t: t.sample_index)] == [False, True]
    assert list(results.finished_trials("s").values()) == ["f0"], "a failed trial is tried again on resume"
    results.close()


def test_rows_round_trip_with_booleans_and_replace_on_the_same_key(tmp_path: Path) -> None:
    results = ResultsDB(tmp_path / "r.db")
    results.save_study("s", {"models": {"a": {}}})
    rows = [trial(), trial(sample_index=1, correct=False), trial(sample_index=2, correct=None, answer=None)]
    results.put_trials(rows)
    assert sorted(results.trials("s"), key=lambda t: t.sample_index) == rows
    results.put_trials([trial(text="again")])
    assert {t.text for t in results.trials("s") if t.sample_index == 0} == {"again"}
    assert len(results.finished_trials("s")) == 3 and list(results.trials("other")) == []
    explanation = ExplanationRow(
        study="s",
        problem_id="p1",
        source="ens",
        kind=CotKind.ENSEMBLE,
        sample_index=0,
        variant=Variant.FULL,
        cot="c",
        final_text="",
        answer=None,
        normalized=None,
        correct=None,
        truncated=True,
        trace='{"steps": []}',
        prompt_tokens=4,
    )
    results.put_explanations([explanation])
    assert list(results.explanations("s")) == [explanation]
    assert results.studies() == ["s"] and results.study_config("s") == {"models": {"a": {}}}
    results.close()


def test_the_explanation_set_keys_by_entry_name() -> None:
    def made(sample_index: int) -> Explanation:
        return Explanation(
            problem_id="p1",
            source_model="llamacpp/same-model",
            format="think-tags",
            cot=f"cot {sample_index}",
            final_text="Answer: 5",
            answer=Score("5", "5", True),
            temperature=1.0,
            sample_index=sample_index,
            usage=Usage(3, 2, 0),
        )

    cots = ExplanationSet()
    for name in ("one", "two"):  # the same model string under two [models] names
        for index in (1, 0):
            cots.add(StudyCot(Variant.FULL, CotKind.SAMPLED, name, made(index)))
    cots.add(StudyCot(Variant.FULL, CotKind.GREEDY, "one", made(0)))
    assert len(cots) == 5
    assert [e.cot for e in cots.of_source(Variant.FULL, CotKind.SAMPLED, "two", "p1")] == ["cot 0", "cot 1"]
    assert cots.get(Variant.FULL, CotKind.GREEDY, "one", "p1") is not None
    assert cots.get(Variant.FULL, CotKind.GREEDY, "two", "p1") is None
    assert cots.get(Variant.WITHOUT_ANSWER, CotKind.GREEDY, "one", "p1") is None
    assert {c.source for c in cots.of_variant(Variant.FULL)} == {"one", "two"}
    row = StudyCot(Variant.FULL, CotKind.GREEDY, "one", made(0)).row("s")
    assert (row.source, row.kind, row.correct, row.prompt_tokens) == ("one", "greedy", True, 3)


def test_a_finished_trial_is_found_by_its_key_without_reading_the_study(tmp_path: Path) -> None:
    results = ResultsDB(tmp_path / "r.db")
    assert not results.has_finished_trials("s")
    failed = trial(problem_id="p2", mode="failed", answer=None, normalized=None, correct=None, error_kind="X")
    results.put_trials([trial(fingerprint="f0"), failed])
    assert results.has_finished_trials("s") and not results.has_finished_trials("other")
    key = ("s", Condition.TRANSFER, Variant.WITHOUT_ANSWER, "a", "b", 0, "p1")
    assert results.finished_trial(key) == ("f0",)
    assert results.finished_trial((*key[:-1], "p2")) is None, "a failed trial is not finished"
    assert results.finished_trial((*key[:-1], "p3")) is None
    only_failed = ResultsDB(tmp_path / "f.db")
    only_failed.put_trials([failed])
    assert not only_failed.has_finished_trials("s"), "nothing to skip when every stored trial failed"


def test_reports_read_only_the_columns_and_sums_they_need(tmp_path: Path) -> None:
    results = ResultsDB(tmp_path / "r.db")
    results.put_trials([trial(problem_id=f"p{i}", correct=i % 2 == 0) for i in range(3)])
    values = list(results.trial_values("s", ("problem_id", "correct", "prompt_tokens")))
    assert values == [(t.problem_id, int(bool(t.correct)), 11) for t in results.trials("s")]
    with pytest.raises(ValueError, match="no column secret"):
        results.trial_values("s", ("problem_id", "secret"))
    cot = StudyCot(
        Variant.FULL,
        CotKind.GREEDY,
        "b",
        Explanation("p1", "m", "think-tags", "c", "Answer: 5", Score("5", "5", True), 0.0, truncated=True),
    )
    rows = [cot.row("s"), replace(cot.row("s"), problem_id="p2", truncated=False, redacted=True, prompt_tokens=7)]
    results.put_explanations(rows)
    assert results.explanation_counts("s") == [("b", "greedy", "full", 2, 1, 1, 7, 0, 0)]
    assert [row.problem_id for row in results.explanations("s", kind="greedy")] == ["p1", "p2"]
    assert list(results.explanations("s", kind="ensemble")) == []
