"""The results DB: studies, explanations and trials in SQLite, beside the response cache in the same file.

One row per trial keyed by what identifies it, so a resumed study skips finished work and a report reads
everything back without the objects that made it. The schema comes from named migrations (the cache's mechanism,
`cotbridge.cache.sqlite.migrate`), so a file made by an earlier version is upgraded when it is opened; rows are
read and written by the fields of `TrialRow` and `ExplanationRow`. Writes are short transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlite_utils

from cotbridge.cache.sqlite import Migration, open_database, write_transaction
from cotbridge.study.ratings import StoredRating

TRIAL_KEY = ("study", "condition", "variant", "evaluator", "source", "sample_index", "problem_id")
EXPLANATION_KEY = ("study", "problem_id", "source", "kind", "sample_index", "variant")
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "reasoning_tokens")
LIVE_USAGE_COLUMNS = ("live_prompt_tokens", "live_completion_tokens")


@dataclass(slots=True)
class TrialRow:
    """One evaluator's answer to one problem under one condition.

    condition: empty | default | sampled | transfer | ensemble (for imported data, the file's condition);
    variant: full | without_answer; source: the [models] name whose CoT was given, the [ensembles] name for
    ensemble, "" for empty; mode: prefill | context | own | imported. `answer` is the extracted answer string as
    the paper's metric compares it; `normalized` the canonical value; `correct` None when unparseable.
    A failed trial is stored too, with no answer and `error_kind` (the error's class, e.g. APITimeoutError) and
    `error` (its message): it counts as an invalid answer, and a resumed run tries it again. `fingerprint` digests
    everything that decides the trial (models, decoding, the CoT's origin, the problem): a resumed run redoes a
    trial whose study changed under it.
    """

    study: str
    condition: str
    variant: str
    evaluator: str
    source: str
    sample_index: int
    problem_id: str
    mode: str
    text: str | None
    answer: str | None
    normalized: str | None
    correct: bool | None
    prompt_text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    error_kind: str | None = None
    error: str | None = None
    fingerprint: str | None = None
    truncated: bool = False  # the answer (or the evaluator's own reasoning before it) hit its token cap
    # Of the tokens above, those of requests a batch model sent live (their job gave no result): billed at the live
    # price, not the batch price (`cotbridge.providers.sent_live`).
    live_prompt_tokens: int = 0
    live_completion_tokens: int = 0

    @property
    def failed(self) -> bool:
        return self.error_kind is not None


@dataclass(slots=True)
class ExplanationRow:
    """One CoT (full or answer-removed) as stored.

    kind: greedy | sampled | ensemble (for imported data, the file's condition); source: the [models] or
    [ensembles] name that wrote it; variant: full | without_answer.
    """

    study: str
    problem_id: str
    source: str
    kind: str
    sample_index: int
    variant: str
    cot: str | None
    final_text: str | None
    answer: str | None
    normalized: str | None
    correct: bool | None
    truncated: bool
    prompt_text: str | None = None
    removal: str | None = None  # JSON of the RemovalReport
    trace: str | None = None  # JSON: the ensemble trace
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    redacted: bool = False  # the vendor withheld part of the reasoning: the CoT has gaps
    live_prompt_tokens: int = 0  # of the tokens above, those sent live by a batch model (as in `TrialRow`)
    live_completion_tokens: int = 0


# -- schema -------------------------------------------------------------------------------------------------------
# Migrations record the schema as it changed: each one is applied once per file, in order. Append, never edit.
# Their names share the migrations table with the cache's, hence the "results_" prefix.


def _create_tables(db: sqlite_utils.Database) -> None:
    db.table("studies").create(
        {"name": str, "config": str, "created_at": float, "updated_at": float}, pk="name", if_not_exists=True
    )
    db.table("trials").create(
        {
            "study": str,
            "condition": str,
            "variant": str,
            "evaluator": str,
            "source": str,
            "sample_index": int,
            "problem_id": str,
            "mode": str,
            "text": str,
            "answer": str,
            "normalized": str,
            "correct": int,
            "prompt_text": str,
            "created_at": float,
        },
        pk=TRIAL_KEY,
        if_not_exists=True,  # a file made before migrations has its tables already
    )
    db.table("explanations").create(
        {
            "study": str,
            "problem_id": str,
            "source": str,
            "kind": str,
            "sample_index": int,
            "variant": str,
            "cot": str,
            "final_text": str,
            "answer": str,
            "normalized": str,
            "correct": int,
            "truncated": int,
            "prompt_text": str,
            "removal": str,
            "trace": str,
            "created_at": float,
        },
        pk=EXPLANATION_KEY,
        if_not_exists=True,
    )


def _add_count_columns(db: sqlite_utils.Database, columns: tuple[str, ...]) -> None:
    """Adds integer columns (default 0) to trials and explanations, skipping those a file has already."""
    for name in ("trials", "explanations"):
        table = db.table(name)
        for column in columns:
            if column not in table.columns_dict:
                table.add_column(column, int, not_null_default=0)


def _add_usage_columns(db: sqlite_utils.Database) -> None:
    # Files made before migrations may have these columns already.
    _add_count_columns(db, USAGE_COLUMNS)


def _add_trial_outcome_columns(db: sqlite_utils.Database) -> None:
    # Files made before migrations have an (unused) `error` column already.
    table = db.table("trials")
    for column in ("error_kind", "error", "fingerprint"):
        if column not in table.columns_dict:
            table.add_column(column, str)


def _add_trial_truncated_column(db: sqlite_utils.Database) -> None:
    table = db.table("trials")
    if "truncated" not in table.columns_dict:
        table.add_column("truncated", int, not_null_default=0)


def _add_explanation_redacted_column(db: sqlite_utils.Database) -> None:
    table = db.table("explanations")
    if "redacted" not in table.columns_dict:
        table.add_column("redacted", int, not_null_default=0)


def _add_live_token_columns(db: sqlite_utils.Database) -> None:
    _add_count_columns(db, LIVE_USAGE_COLUMNS)


def _create_ratings_table(db: sqlite_utils.Database) -> None:
    db.table("ratings").create(
        {
            "study": str,
            "participant_id": str,
            "item": str,
            "model": str,
            "criterion": str,
            "value": float,
            "model_label": str,
        },
        if_not_exists=True,
    )
    db.execute("CREATE INDEX IF NOT EXISTS ratings_study ON ratings (study)")


RESULTS_MIGRATIONS: list[Migration] = [
    ("results_0001_create_tables", _create_tables),
    ("results_0002_usage_columns", _add_usage_columns),
    ("results_0003_trial_outcome", _add_trial_outcome_columns),
    ("results_0004_trial_truncated", _add_trial_truncated_column),
    ("results_0005_explanation_redacted", _add_explanation_redacted_column),
    ("results_0006_ratings", _create_ratings_table),
    ("results_0007_live_tokens", _add_live_token_columns),
]
RATING_COLUMNS = tuple(f.name for f in fields(StoredRating))

# -- rows ---------------------------------------------------------------------------------------------------------

Row = TypeVar("Row", TrialRow, ExplanationRow)
BOOL_FIELDS = frozenset({"correct", "truncated", "redacted"})  # stored as 0/1, NULL for an unparseable answer


class _Table(Generic[Row]):
    """One table's SQL, built from its row dataclass: INSERT and SELECT name the same columns in field order."""

    def __init__(self, name: str, row_type: type[Row]) -> None:
        self.name = name
        self.row_type: type[Row] = row_type
        self.columns = tuple(f.name for f in fields(row_type))
        self.bools = [i for i, column in enumerate(self.columns) if column in BOOL_FIELDS]
        self._get = attrgetter(*self.columns)
        stored = (*self.columns, "created_at")
        # INSERT OR REPLACE: writing a key again (a re-import, a repeated study) replaces the row.
        placeholders = ", ".join(["?"] * len(stored))
        self.insert = f"INSERT OR REPLACE INTO {name} ({', '.join(stored)}) VALUES ({placeholders})"
        self.select = f"SELECT {', '.join(self.columns)} FROM {name}"

    def values(self, row: Row, now: float) -> tuple[Any, ...]:
        """The INSERT's parameters: the row's fields in column order, then the time it is written."""
        return (*self._get(row), now)

    def row(self, values: tuple[Any, ...]) -> Row:
        """A row from the SELECT's values, with 0/1 turned back into booleans."""
        converted = list(values)
        for i in self.bools:
            converted[i] = None if converted[i] is None else bool(converted[i])
        return self.row_type(*converted)


TRIALS = _Table("trials", TrialRow)
EXPLANATIONS = _Table("explanations", ExplanationRow)


_FINISHED_TRIAL = (
    f"SELECT fingerprint FROM trials WHERE {' AND '.join(f'{c} = ?' for c in TRIAL_KEY)} AND error_kind IS NULL"
)


class ResultsDB:
    """Studies, explanations and trials in one SQLite file (the cache's file, when a study runs)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Opens (or creates) a results DB; `read_only` opens an existing one without ever writing to it."""
        self.path = str(path)
        self._conn = open_database(self.path, "results DB", RESULTS_MIGRATIONS, read_only=read_only)

    def close(self) -> None:
        """Closes the connection; every write is committed already."""
        self._conn.close()

    def _put(self, table: _Table[Row], rows: list[Row]) -> None:
        if not rows:
            return
        now = time.time()
        with write_transaction(self._conn):
            self._conn.executemany(table.insert, [table.values(row, now) for row in rows])

    def _read(self, table: _Table[Row], study: str | None) -> Iterator[Row]:
        if study is None:
            cursor = self._conn.execute(table.select)
        else:
            cursor = self._conn.execute(table.select + " WHERE study = ?", (study,))
        for values in cursor:
            yield table.row(values)

    def save_study(self, name: str, config: dict[str, Any]) -> None:
        """Records a study and its config (JSON); saving it again replaces the config and keeps its creation time."""
        now = time.time()
        self._conn.execute(
            "INSERT INTO studies (name, config, created_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            (name, json.dumps(config), now, now),
        )

    def study_config(self, name: str) -> dict[str, Any]:
        """The config a study was saved with, or {} for an unknown study."""
        row = self._conn.execute("SELECT config FROM studies WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def studies(self) -> list[str]:
        """Names of the studies in the file, oldest first."""
        return [row[0] for row in self._conn.execute("SELECT name FROM studies ORDER BY created_at")]

    def put_trials(self, rows: list[TrialRow]) -> None:
        """Stores trials in one transaction, replacing any with the same key."""
        self._put(TRIALS, rows)

    def put_explanations(self, rows: list[ExplanationRow]) -> None:
        """Stores explanations in one transaction, replacing any with the same key."""
        self._put(EXPLANATIONS, rows)

    def finished_trials(self, study: str) -> dict[tuple[Any, ...], str | None]:
        """Key (in `TRIAL_KEY` order) -> fingerprint of a study's trials that finished without an error (a failed
        one is tried again on resume)."""
        sql = f"SELECT {', '.join(TRIAL_KEY)}, fingerprint FROM trials WHERE study = ? AND error_kind IS NULL"
        return {tuple(row[:-1]): row[-1] for row in self._conn.execute(sql, (study,))}

    def has_finished_trials(self, study: str) -> bool:
        """Whether any of a study's trials finished without an error (else a run has nothing to skip)."""
        sql = "SELECT 1 FROM trials WHERE study = ? AND error_kind IS NULL LIMIT 1"
        return self._conn.execute(sql, (study,)).fetchone() is not None

    def finished_trial(self, key: tuple[Any, ...]) -> tuple[str | None] | None:
        """(fingerprint,) of the trial with this key (in `TRIAL_KEY` order) when it finished without an error, else
        None: one lookup by the primary key, so a resumed run of any size holds no set of finished keys."""
        return self._conn.execute(_FINISHED_TRIAL, key).fetchone()  # type: ignore[no-any-return]

    def explanations(self, study: str, *, kind: str | None = None) -> Iterator[ExplanationRow]:
        """A study's stored CoTs (of one kind, e.g. "ensemble", when `kind` is given)."""
        if kind is None:
            return self._read(EXPLANATIONS, study)
        cursor = self._conn.execute(EXPLANATIONS.select + " WHERE study = ? AND kind = ?", (study, kind))
        return (EXPLANATIONS.row(values) for values in cursor)

    def trial_values(self, study: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Only these columns of a study's trials, as stored (booleans as 0/1), in the order `trials` gives them:
        what a report of a million trials reads instead of building a `TrialRow` for each."""
        unknown = [column for column in columns if column not in TRIALS.columns]
        if unknown:
            raise ValueError(f"trials have no column {', '.join(unknown)}")
        return iter(self._conn.execute(f"SELECT {', '.join(columns)} FROM trials WHERE study = ?", (study,)))

    def explanation_counts(self, study: str) -> list[tuple[str, str, str, int, int, int, int, int, int]]:
        """Per (source, kind, variant) of a study's CoTs: how many, how many truncated, how many redacted, and
        their prompt, completion and reasoning tokens, summed by SQLite."""
        sql = (
            "SELECT source, kind, variant, COUNT(*), SUM(truncated), SUM(redacted), SUM(prompt_tokens),"
            " SUM(completion_tokens), SUM(reasoning_tokens) FROM explanations WHERE study = ?"
            " GROUP BY source, kind, variant"
        )
        return self._conn.execute(sql, (study,)).fetchall()

    def live_token_counts(self, study: str) -> list[tuple[str, str, str, int, int]]:
        """Per (source, kind, variant) of a study's CoTs with any: the prompt and completion tokens a batch model
        sent live, summed by SQLite."""
        sql = (
            "SELECT source, kind, variant, SUM(live_prompt_tokens), SUM(live_completion_tokens) FROM explanations"
            " WHERE study = ? GROUP BY source, kind, variant"
            " HAVING SUM(live_prompt_tokens) > 0 OR SUM(live_completion_tokens) > 0"
        )
        return self._conn.execute(sql, (study,)).fetchall()

    def trials(self, study: str | None = None) -> Iterator[TrialRow]:
        """A study's trials (every study's when `study` is None)."""
        return self._read(TRIALS, study)

    def put_ratings(self, study: str, ratings: Sequence[StoredRating]) -> None:
        """Stores a study's human ratings, replacing any it had (ratings have no key: a re-import replaces all)."""
        now_columns = ", ".join(("study", *RATING_COLUMNS))
        placeholders = ", ".join(["?"] * (len(RATING_COLUMNS) + 1))
        with write_transaction(self._conn):
            self._conn.execute("DELETE FROM ratings WHERE study = ?", (study,))
            self._conn.executemany(
                f"INSERT INTO ratings ({now_columns}) VALUES ({placeholders})",
                [(study, *(getattr(r, c) for c in RATING_COLUMNS)) for r in ratings],
            )

    def ratings(self, study: str) -> list[StoredRating]:
        """A study's human ratings, in the order they were stored ([] when it has none)."""
        sql = f"SELECT {', '.join(RATING_COLUMNS)} FROM ratings WHERE study = ? ORDER BY rowid"
        return [StoredRating(*row) for row in self._conn.execute(sql, (study,))]
