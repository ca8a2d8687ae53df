"""Your own problems from a JSON Lines file, one object a line.

Fields: `id` (string or integer, unique), `question` (string), `answer` (the gold answer), and optionally
`answer_type` ("number", "integer", "date" or "text"; default: "number" when `answer` is a JSON number, else
"text") and `tolerance` (absolute, >= 0, numbers and integers only; default 0). Blank lines are skipped.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, cast

from cotbridge.datasets.answers import ANSWER_TYPES, AnswerType, check_typed, parse_date
from cotbridge.errors import ConfigError
from cotbridge.records import Message, Problem

DATASET = "jsonl"

SYSTEM_PROMPT = (
    "Solve the problem. Reason step by step, then give the final answer alone on the last line, "
    "in the form 'Answer: <answer>'."
)

_EXAMPLE = '{"id": "q1", "question": "What is 2 + 3?", "answer": 5}'


def question_prompt(question: str, system: str = SYSTEM_PROMPT) -> list[Message]:
    """A system message asking for a final `Answer:` line, and the question as the user message."""
    return [{"role": "system", "content": system}, {"role": "user", "content": question.strip()}]


def load_jsonl(path: str | Path, *, dataset: str = DATASET) -> list[Problem]:
    """Every line of a JSON Lines problem file as a `Problem`, in file order (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"jsonl: no such file: {path}; give the path of a .jsonl file, one object a line: {_EXAMPLE}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"jsonl: {path}: cannot read it as UTF-8 text ({exc})") from None
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = _problem(line, f"jsonl: {path}: line {number}", dataset)
        if problem.id in seen:
            raise ConfigError(
                f"jsonl: {path}: line {number}: id {problem.id!r} already used on line {seen[problem.id]}; "
                "make every id unique"
            )
        seen[problem.id] = number
        problems.append(problem)
    if not problems:
        raise ConfigError(f"jsonl: {path}: the file has no problems; add one object a line: {_EXAMPLE}")
    return problems


def _problem(line: str, where: str, dataset: str) -> Problem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); expected e.g. {_EXAMPLE}"
        ) from None
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}; e.g. {_EXAMPLE}")
    missing = [k for k in ("id", "question", "answer") if k not in row]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(map(repr, missing))}; e.g. {_EXAMPLE}")
    raw_id, question, gold = row["id"], row["question"], row["answer"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
        raise ConfigError(f"{where}: field 'id' must be a non-empty string or an integer, not {raw_id!r}")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: field 'question' must be a non-empty string")
    answer_type = _answer_type(row, gold, where)
    tolerance = _tolerance(row, answer_type, where)
    _check_gold(gold, answer_type, where)
    return Problem(
        id=str(raw_id),
        dataset=dataset,
        prompt=question_prompt(question),
        gold=gold,
        checker=functools.partial(check_typed, gold=gold, answer_type=answer_type, tolerance=tolerance),
        meta={"answer_type": answer_type, "tolerance": tolerance},
    )


def _answer_type(row: dict[str, Any], gold: Any, where: str) -> AnswerType:
    declared = row.get("answer_type")
    if declared is None:
        return "number" if isinstance(gold, int | float) and not isinstance(gold, bool) else "text"
    if declared not in ANSWER_TYPES:
        raise ConfigError(f"{where}: field 'answer_type' is {declared!r}; use one of {', '.join(ANSWER_TYPES)}")
    return cast(AnswerType, declared)


def _tolerance(row: dict[str, Any], answer_type: AnswerType, where: str) -> float:
    tolerance = row.get("tolerance")
    if tolerance is None:
        return 0.0
    if answer_type not in ("number", "integer"):
        raise ConfigError(f"{where}: field 'tolerance' only applies to number and integer answers; remove it")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
        raise ConfigError(f"{where}: field 'tolerance' must be a number, not {tolerance!r}")
    if tolerance < 0:
        raise ConfigError(f"{where}: field 'tolerance' must be >= 0 (an absolute difference), not {tolerance}")
    return float(tolerance)


def _plain_number(text: str) -> float | None:
    """The gold answer as a number when it is written as one (no units or words), else None."""
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _check_gold(gold: Any, answer_type: AnswerType, where: str) -> None:
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise ConfigError(f"{where}: field 'answer' must be a string or a number, not {json.dumps(gold)}")
    text = str(gold).strip()
    if not text:
        raise ConfigError(f"{where}: field 'answer' is empty")
    if answer_type in ("number", "integer"):
        number = _plain_number(text)
        if number is None:
            raise ConfigError(f"{where}: field 'answer' = {gold!r} is not a number (answer_type {answer_type})")
        if answer_type == "integer" and number != round(number):
            raise ConfigError(f"{where}: field 'answer' = {gold!r} is not a whole number; use answer_type number")
    elif answer_type == "date" and parse_date(text) is None:
        raise ConfigError(f"{where}: field 'answer' = {gold!r} is not a date; write it as MM/DD/YYYY or YYYY-MM-DD")
