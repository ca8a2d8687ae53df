"""MedCalc-Bench: the v1.0 test CSV as problems (patient note + question, checked by the official rules).

The paper's subset is `load_medcalc(path)` sampled with `sample=100, seed=42` (see `cotbridge.datasets.sampling`).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from pathlib import Path

from cotbridge.datasets.answers import (
    check_medcalc,
    medcalc_kind,
    parse_date,
    parse_gestational_age,
    parse_number,
)
from cotbridge.errors import ConfigError
from cotbridge.records import Message, Problem

DATASET = "medcalc"

REQUIRED_COLUMNS = (
    "Row Number",
    "Calculator ID",
    "Calculator Name",
    "Category",
    "Output Type",
    "Note ID",
    "Patient Note",
    "Question",
    "Ground Truth Answer",
    "Lower Limit",
    "Upper Limit",
)

SYSTEM_PROMPT = (
    "You are a careful clinical calculation assistant. Read the patient note, work out the requested value "
    "step by step, and report it. Reply with one JSON object and nothing else. It has exactly two keys: "
    '"step_by_step_thinking", a string with your reasoning, and "answer", a string holding only the final '
    "value in the format the task asks for, without units or other words."
)

_FIX = "point medcalc: at the MedCalc-Bench v1.0 test_data.csv (ncbi-nlp/MedCalc-Bench, dataset/test_data.csv)"


def medcalc_prompt(note: str, question: str) -> list[Message]:
    """The chat messages for one MedCalc-Bench problem: the instructions, then the note and the task."""
    user = (
        f"Patient note:\n{note.strip()}\n\n"
        f"Task:\n{question.strip()}\n\n"
        'Answer with the JSON object {"step_by_step_thinking": "...", "answer": "..."} only.'
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def load_medcalc(path: str | Path) -> list[Problem]:
    """Every row of a MedCalc-Bench test CSV as a `Problem`, in file order.

    `path` is the CSV, or a folder holding `test_data.csv`. Raises `ConfigError` naming the file, row and
    field when the file is missing or a row cannot be checked.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "test_data.csv"
    if not path.is_file():
        raise ConfigError(f"medcalc: no such file: {path}; {_FIX}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM (as Excel saves) is not data
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"medcalc: {path}: missing column(s) {', '.join(map(repr, missing))} in the header; {_FIX}"
                )
            problems = [_problem(row, path, n) for n, row in enumerate(reader, start=1)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"medcalc: {path}: not a readable UTF-8 CSV ({exc}); {_FIX}") from None
    if not problems:
        raise ConfigError(f"medcalc: {path}: the file has a header but no rows; {_FIX}")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"medcalc: {path}: Row Number {duplicate} appears more than once; {_FIX}")
    return problems


def _problem(row: Mapping[str, str | None], path: Path, n: int) -> Problem:
    """Data row `n` (counted from 1 after the header; a row may span lines) as a Problem, validated."""
    where = f"medcalc: {path}: data row {n} (Row Number {row.get('Row Number')!r})"

    def field(name: str) -> str:
        value = (row.get(name) or "").strip()
        if not value:
            raise ConfigError(f"{where}: field {name!r} is empty; {_FIX}")
        return value

    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"{where}: field {name!r} = {row.get(name)!r} {why}; {_FIX}")

    row_number, calculator = field("Row Number"), field("Calculator ID")
    if not calculator.isdigit():
        raise bad("Calculator ID", "is not an integer")
    calculator_id = int(calculator)
    kind = medcalc_kind(calculator_id)
    gold, lower, upper = field("Ground Truth Answer"), field("Lower Limit"), field("Upper Limit")
    # Fail at load time, not at scoring time, on a gold answer or limit the rule of this calculator cannot read.
    if kind == "date" and parse_date(gold) is None:
        raise bad("Ground Truth Answer", "is not a date in MM/DD/YYYY")
    if kind == "gestational_age" and parse_gestational_age(gold) is None:
        raise bad("Ground Truth Answer", "is not a gestational age like ('4 weeks', '0 days')")
    if kind == "integer" and parse_number(gold) is None:
        raise bad("Ground Truth Answer", "is not a number")
    if kind == "decimal":
        for name, value in (("Lower Limit", lower), ("Upper Limit", upper)):
            if parse_number(value) is None:
                raise bad(name, "is not a number")
    return Problem(
        id=row_number,
        dataset=DATASET,
        prompt=medcalc_prompt(field("Patient Note"), field("Question")),
        gold=gold,
        checker=functools.partial(check_medcalc, calculator_id=calculator_id, gold=gold, lower=lower, upper=upper),
        meta={
            "row_number": int(row_number) if row_number.isdigit() else row_number,
            "calculator_id": calculator_id,
            "calculator_name": row.get("Calculator Name") or "",
            "category": row.get("Category") or "",
            "output_type": row.get("Output Type") or "",
            "answer_kind": kind,
            "note_id": row.get("Note ID") or "",
            "lower_limit": lower,
            "upper_limit": upper,
        },
    )
