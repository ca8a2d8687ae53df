"""The results DB: studies, explanations and trials in SQLite, beside the response cache in the same file.

One row per trial keyed by what identifies it, so a resumed study skips finished work and a report reads
everything back without the objects that made it. Schema through sqlite-utils; writes are short transactions.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from cotbridge.cache.sqlite import connect, write_transaction
from cotbridge.errors import ConfigError

TRIAL_KEY = ("study", "condition", "variant", "evaluator", "source", "sample_index", "problem_id")
EXPLANATION_KEY = ("study", "problem_id", "source", "kind", "sample_index", "variant")


@dataclass(slots=True)
class TrialRow:
    """One evaluator's answer to one problem under one condition.

    condition: empty | default | sampled | transfer | ensemble:NAME (for imported data, any label);
    variant: full | without_answer; source: the model whose CoT was given (None for empty);
    mode: prefill | context | own | imported. `answer` is the extracted answer string as the paper's metric
    compares it; `normalized` the canonical value; `correct` None when unparseable; `error` when it failed.
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
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class ExplanationRow:
    """One CoT (full or answer-removed) as stored."""

    study: str
    problem_id: str
    source: str
    kind: str  # greedy | sampled | ensemble:NAME
    sample_index: int
    variant: str  # full | without_answer
    cot: str | None
    final_text: str | None
    answer: str | None
    normalized: str | None
    correct: bool | None
    truncated: bool
    prompt_text: str | None = None
    removal: str | None = None  # JSON of the RemovalReport
    trace: str | None = None  # JSON: the ensemble trace
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0


USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "reasoning_tokens")


def _create(db: sqlite_utils.Database) -> None:
    db["studies"].create(  # type: ignore[union-attr]
        {"name": str, "config": str, "created_at": float, "updated_at": float}, pk="name", if_not_exists=True
    )
    db["trials"].create(  # type: ignore[union-attr]
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
            "error": str,
            "created_at": float,
        },
        pk=TRIAL_KEY,
        if_not_exists=True,
    )
    db["explanations"].create(  # type: ignore[union-attr]
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
            "error": str,
            "created_at": float,
        },
        pk=EXPLANATION_KEY,
        if_not_exists=True,
    )
    # Token counts came later: add them to a results DB made before.
    for name in ("trials", "explanations"):
        table = db[name]
        for column in USAGE_COLUMNS:
            if column not in table.columns_dict:  # type: ignore[union-attr]
                table.add_column(column, int, not_null_default=0)  # type: ignore[union-attr]


class ResultsDB:
    """Studies, explanations and trials in one SQLite file (the cache's file, when a study runs)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._conn = connect(self.path)
            with write_transaction(self._conn):
                _create(sqlite_utils.Database(self._conn))
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"results DB {self.path!r} is not a usable SQLite database: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def _upsert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Inserts rows, replacing a row with the same primary key (a retried trial replaces its failure)."""
        if not rows:
            return
        now = time.time()
        for row in rows:
            row["created_at"] = now
        columns = list(rows[0])
        sql = f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        with write_transaction(self._conn):
            self._conn.executemany(sql, [tuple(row[c] for c in columns) for row in rows])

    def save_study(self, name: str, config: dict[str, Any]) -> None:
        now = time.time()
        self._conn.execute(
            "INSERT INTO studies (name, config, created_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            (name, json.dumps(config), now, now),
        )

    def study_config(self, name: str) -> dict[str, Any]:
        row = self._conn.execute("SELECT config FROM studies WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def studies(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT name FROM studies ORDER BY created_at")]

    def put_trials(self, rows: list[TrialRow]) -> None:
        self._upsert("trials", [asdict(r) for r in rows])

    def put_explanations(self, rows: list[ExplanationRow]) -> None:
        self._upsert("explanations", [asdict(r) for r in rows])

    def finished_trials(self, study: str) -> set[tuple[Any, ...]]:
        """Keys of trials that succeeded (failed ones are tried again on resume)."""
        return {
            tuple(row)
            for row in self._conn.execute(
                "SELECT study, condition, variant, evaluator, source, sample_index, problem_id FROM trials"
                " WHERE study = ? AND error IS NULL",
                (study,),
            )
        }

    def explanations(self, study: str) -> Iterator[ExplanationRow]:
        cursor = self._conn.execute(
            "SELECT study, problem_id, source, kind, sample_index, variant, cot, final_text, answer, normalized,"
            " correct, truncated, prompt_text, removal, trace, error, prompt_tokens, completion_tokens,"
            " reasoning_tokens FROM explanations WHERE study = ?",
            (study,),
        )
        for row in cursor:
            values = list(row)
            values[10] = None if values[10] is None else bool(values[10])
            values[11] = bool(values[11])
            yield ExplanationRow(*values)

    def trials(self, study: str | None = None) -> Iterator[TrialRow]:
        sql = (
            "SELECT study, condition, variant, evaluator, source, sample_index, problem_id, mode, text, answer,"
            " normalized, correct, prompt_text, error, prompt_tokens, completion_tokens, reasoning_tokens FROM trials"
        )
        cursor = self._conn.execute(sql + " WHERE study = ?", (study,)) if study else self._conn.execute(sql)
        for row in cursor:
            values = list(row)
            values[11] = None if values[11] is None else bool(values[11])
            yield TrialRow(*values)
