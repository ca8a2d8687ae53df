"""Answer extraction, value parsing and MedCalc-Bench scoring: pure functions, no I/O.

Extraction (`extract_answer`) reads only the text the model itself generated: the `"answer"` field of the last
parseable JSON (or Python-literal) object that has one, tolerating code fences, single quotes, trailing text and
prose around the object; failing that, the value of the last `answer: ...` / `"answer": ...` in the text.

MedCalc-Bench rules (`score_medcalc`), as the official evaluation applies them:

- dates (calculator ids 13, 68): equal as calendar dates (MM/DD/YYYY; "3/4/2021" is 03/04/2021);
- gestational age (id 69): equal as a (weeks, days) pair of integers, compared as written ((7, 9) is not (8, 2));
- integer scores (`INTEGER_CALCULATORS`): correct when `round(answer)` equals the ground truth (Python's `round`,
  ties to even, like the official code: 4.5 rounds to 4);
- all other calculators (decimal): correct when Lower Limit <= answer <= Upper Limit (inclusive).

An answer that cannot be parsed is invalid: `Score.correct` is None (it counts as wrong for accuracy). The error
strings the reference code stored in place of an answer when it crashed (`is_reference_error`) are invalid too.

Deliberate differences from the official free-text heuristics (they only matter for raw model text, never for the
values the reference code already extracted): no `eval` of expressions such as "str(140 * 2)"; a percentage is
read as written ("0.25%" is 0.25, where the official code divides by 100, although FENa's ground truth is a
percentage and its question asks for one); a comma list is not counted ("3, 4, 5" is 5, not 3); a
thousands separator is read as one ("1,234" is 1234).
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from cotbridge.formats import FORMATS
from cotbridge.records import Score

# Calculator ids by answer kind (MedCalc-Bench v1.0; every id not listed here is a decimal calculator).
DATE_CALCULATORS = frozenset({13, 68})
GESTATIONAL_AGE_CALCULATORS = frozenset({69})
INTEGER_CALCULATORS = frozenset({4, 15, 16, 17, 18, 20, 21, 25, 27, 28, 29, 32, 33, 36, 43, 45, 48, 51})

MedCalcKind = Literal["date", "gestational_age", "integer", "decimal"]

# Substrings of the Python exception messages the reference code stored as the "answer" when extraction or
# checking crashed ("name 'N' is not defined" is eval("N/A")), plus its two not-found markers.
REFERENCE_ERROR_MARKERS = (
    "not defined",
    "does not match",
    "are not permitted",
    "object has no attribute",
    "N/A",
    "Not Found",
)

# Template placeholders a model may echo back instead of answering (the reference prompts' wording included).
_PLACEHOLDERS = frozenset(
    {
        "str(short_and_direct_answer_of_the_question)",
        "str(value which is the answer to the question)",
        "x.xx",
        "...",
        "<answer>",
        "your answer",
    }
)

# Thinking that an inline-reasoning model left in its text ends where its family closes the channel; the answer
# comes after.
_THINK_END = re.compile(
    "|".join(re.escape(FORMATS[name].stop) for name in ("think-tags", "openthinker")), re.IGNORECASE
)
# A "{" that opens a dict literal: followed by a quoted key (skips LaTeX braces and prose).
_DICT_OPEN = re.compile(r"\{\s*[\"']")
# Bound on dict candidates tried, from the end of the text backwards: keeps pathological inputs linear-ish.
_MAX_DICT_CANDIDATES = 200
# `answer: value`, `"answer": "value"`, `**Final answer:** value`; the value runs to the end of its line.
_ANSWER_LINE = re.compile(r"\banswer\b[\"'*_]*\s*[:=]\s*[*_]*\s*(?P<value>[^\n]*)", re.IGNORECASE)

_MISSING = object()  # no object has the field (a JSON null is a present, empty answer)
_JSON = json.JSONDecoder(strict=False)  # strict=False: models put raw newlines inside JSON strings


def strip_thinking(text: str) -> str:
    """The text after the last closing thinking tag (`</think>`, `<|end_of_thought|>`), or all of it."""
    parts = _THINK_END.split(text)
    return parts[-1] if len(parts) > 1 else text


_STRUCTURAL = re.compile(r"[{}\"'\\]")


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the "}" matching the "{" at `start`, skipping quoted strings; None when unbalanced."""
    depth = 0
    quote: str | None = None
    escaped = -1  # position of a character escaped by a backslash inside a string
    for match in _STRUCTURAL.finditer(text, start):  # jumps from one structural character to the next
        ch, at = match.group(), match.start()
        if at == escaped:
            continue
        if quote:
            if ch == "\\":
                escaped = at + 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return at + 1
    return None


def _parse_dict_at(text: str, start: int) -> dict[Any, Any] | None:
    """The JSON object, or failing that the Python dict literal, that starts at `start`."""
    try:
        value, _ = _JSON.raw_decode(text, start)
    except json.JSONDecodeError:
        end = _balanced_end(text, start)
        if end is None:
            return None
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" for LaTeX inside the literal
                warnings.simplefilter("ignore")
                value = ast.literal_eval(text[start:end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def _last_object_field(text: str, keys: tuple[str, ...]) -> Any:
    """The value under one of `keys` (any case) in the last parseable object that has one; `_MISSING` if none.

    Candidates are tried from the end of the text backwards, so a nested object without the key is skipped
    and the enclosing one found.
    """
    for start in reversed([m.start() for m in _DICT_OPEN.finditer(text)][-_MAX_DICT_CANDIDATES:]):
        obj = _parse_dict_at(text, start)
        for key, value in (obj or {}).items():
            if isinstance(key, str) and key.strip().lower() in keys:
                return value
    return _MISSING


def _value_to_text(value: Any) -> str:
    """An "answer" field's value as text: numbers as written, a pair as "(a, b)", weeks/days dicts as a pair."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_value_to_text(v) for v in value) + ")"
    if isinstance(value, dict):
        lowered = {str(k).strip().lower(): v for k, v in value.items()}
        if "weeks" in lowered and "days" in lowered:
            return f"({_value_to_text(lowered['weeks'])}, {_value_to_text(lowered['days'])})"
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _clean_value(value: str) -> str:
    """A one-line fallback match as the bare value: quotes, JSON and markdown debris removed."""
    value = value.strip()
    closing = {'"': '"', "'": "'", "\u201c": "\u201d", "`": "`"}.get(value[:1])
    if closing:  # a quoted value ends at its closing quote: `"answer": "4 weeks, 0 days", "x": ...`
        end = value.find(closing, 1)
        return value[1:end].strip() if end > 0 else value[1:].strip()
    value = re.sub(r"[\s,;}*_`]+$", "", value)  # `4},`, `4**`
    return value[:-1].rstrip() if value.endswith(".") and not value.endswith("..") else value


def extract_answer(text: str) -> str | None:
    """The model's answer from its own generated text, as a stripped string; None when there is none.

    The "answer" field of the last parseable object that has one wins; otherwise the last `answer: ...` line.
    Empty answers and echoed template placeholders count as no answer.
    """
    text = strip_thinking(text)
    value = _last_object_field(text, ("answer",))
    if value is not _MISSING:
        return _usable(_value_to_text(value).strip())
    matches = list(_ANSWER_LINE.finditer(text))
    if not matches:
        return None
    return _usable(_clean_value(matches[-1].group("value")))


def _usable(value: str) -> str | None:
    return None if not value or value.lower() in _PLACEHOLDERS else value


def is_reference_error(value: str) -> bool:
    """Whether `value` is one of the error strings the reference code stored instead of an answer."""
    return any(marker in value for marker in REFERENCE_ERROR_MARKERS)


# --- numbers -----------------------------------------------------------------------------------------------

_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?|[+-]?\.\d+(?:[eE][+-]?\d+)?"
_WHOLE_NUMBER = re.compile(rf"(?:{_NUMBER})")
_ANY_NUMBER = re.compile(rf"(?<![\w.])(?:{_NUMBER})")
_OUT_OF = re.compile(rf"({_NUMBER})\s*out\s+of\b", re.IGNORECASE)
# Units whose digits are not the answer: "/1.73 m²", "m^2", "kg/m2", "10^9/L", "x10^3".
_DIGIT_UNITS = re.compile(
    r"/\s*1\.73\s*m?\s*(?:\^?2|²)?|\bm\s*(?:\^\s*2|²|2)\b|[x×*]?\s*10\s*(?:\^|\*\*)\s*-?\d+|²|³",
    re.IGNORECASE,
)


def _to_float(token: str) -> float | None:
    try:
        value = float(token.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_number(text: str) -> float | None:
    """The number a short answer states: "5", "5.0", "1,234", "2e-05", "12.5 %", "3 out of 5", "BMI = 22.9 kg/m²".

    A whole-string number wins; then "N out of"; then the last number after the last "=", ignoring the digits of
    units such as m² or 10^9/L. None when there is no finite number.
    """
    value = text.strip().replace("\u2212", "-").strip("\"'`*_ ")
    value = value.removesuffix(".") if value.endswith(".") and not value.endswith("..") else value
    if _WHOLE_NUMBER.fullmatch(value):
        return _to_float(value)
    match = _OUT_OF.search(value)
    if match:
        return _to_float(match.group(1))
    tail = _DIGIT_UNITS.sub(" ", value.rsplit("=", 1)[-1])
    numbers = _ANY_NUMBER.findall(tail)
    return _to_float(numbers[-1]) if numbers else None


def normalize_number(value: float) -> str:
    """Canonical text of a number: plain decimal notation, 12 significant digits, no trailing zeros.

    "5" and "5.0" both give "5"; 0.10300000000000001 gives "0.103"; 2e-05 gives "0.00002"; -0.0 gives "0".
    """
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    text = format(Decimal(format(value, ".12g")).normalize(), "f")
    return "0" if text in ("-0", "0") else text


# --- dates and gestational age -----------------------------------------------------------------------------

_DATE = re.compile(r"(?<!\d)(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")


def parse_date(text: str) -> date | None:
    """The first valid calendar date after the last "=": M/D/YYYY (also with "-" or "."), or YYYY-MM-DD.

    "3/4/2021" and "03/04/2021 (40 weeks after the LMP)" both give 2021-03-04; None when there is no valid date.
    """
    tail = text.rsplit("=", 1)[-1]
    found: list[tuple[int, date]] = []
    for match in _DATE.finditer(tail):
        month, day, year = (int(g) for g in match.groups())
        found.extend(_valid_date(match.start(), year, month, day))
    for match in _ISO_DATE.finditer(tail):
        year, month, day = (int(g) for g in match.groups())
        found.extend(_valid_date(match.start(), year, month, day))
    return min(found)[1] if found else None


def _valid_date(at: int, year: int, month: int, day: int) -> list[tuple[int, date]]:
    try:
        return [(at, date(year, month, day))]
    except ValueError:
        return []


def format_date(value: date) -> str:
    """MM/DD/YYYY, the MedCalc-Bench date format."""
    return f"{value.month:02d}/{value.day:02d}/{value.year:04d}"


_WEEKS_DAYS = re.compile(
    r"(\d+)\s*(?:weeks?|wks?|w)\b[^\d]{0,20}?(\d+)\s*(?:days?|d)\b",
    re.IGNORECASE,
)
_PAIR = re.compile(
    r"^[(\[]?\s*(\d+)\s*(?:weeks?|wks?|w)?\s*(?:,|\+|and)\s*(\d+)\s*(?:days?|d)?\s*[)\]]?$", re.IGNORECASE
)
_WEEKS_ONLY = re.compile(r"^(\d+)\s*(?:weeks?|wks?|w)$", re.IGNORECASE)
_DAYS_ONLY = re.compile(r"^(\d+)\s*(?:days?|d)$", re.IGNORECASE)


def parse_gestational_age(text: str) -> tuple[int, int] | None:
    """(weeks, days) from "(4, 0)", "('4 weeks', '0 days')", "4 weeks and 0 days", "4w 0d", "29+3", "4 weeks".

    The pair is kept as written (9 days is not carried into a week): the official check compares pairs as is.
    """
    flat = re.sub(r"[\"'`*]", "", text).strip().removesuffix(".").strip()
    match = _PAIR.match(flat) or _WEEKS_DAYS.search(flat)
    if match:
        return int(match.group(1)), int(match.group(2))
    match = _WEEKS_ONLY.match(flat)
    if match:
        return int(match.group(1)), 0
    match = _DAYS_ONLY.match(flat)
    if match:
        return 0, int(match.group(1))
    return None


def format_gestational_age(value: tuple[int, int]) -> str:
    """The pair written "(weeks, days)", e.g. "(4, 0)"."""
    return f"({value[0]}, {value[1]})"


# --- MedCalc-Bench -----------------------------------------------------------------------------------------


def medcalc_kind(calculator_id: int) -> MedCalcKind:
    """How a calculator's answers are compared: date, gestational_age, integer or decimal."""
    if calculator_id in DATE_CALCULATORS:
        return "date"
    if calculator_id in GESTATIONAL_AGE_CALCULATORS:
        return "gestational_age"
    if calculator_id in INTEGER_CALCULATORS:
        return "integer"
    return "decimal"


def score_medcalc(answer: str | None, *, calculator_id: int, gold: str, lower: str, upper: str) -> Score:
    """Score an extracted answer string (see `extract_answer`) by the MedCalc-Bench rule of its calculator.

    `gold`, `lower` and `upper` are the CSV's Ground Truth Answer, Lower Limit and Upper Limit as written.
    """
    if answer is None:
        return Score(parsed=None, normalized=None, correct=None)
    answer = answer.strip()
    invalid = Score(parsed=answer, normalized=None, correct=None)
    if not answer or is_reference_error(answer):
        return invalid
    kind = medcalc_kind(calculator_id)
    if kind == "date":
        when, gold_date = parse_date(answer), parse_date(gold)
        if when is None or gold_date is None:
            return invalid
        return Score(parsed=answer, normalized=format_date(when), correct=when == gold_date)
    if kind == "gestational_age":
        pair, gold_pair = parse_gestational_age(answer), parse_gestational_age(gold)
        if pair is None or gold_pair is None:
            return invalid
        return Score(parsed=answer, normalized=format_gestational_age(pair), correct=pair == gold_pair)
    number = parse_number(answer)
    if number is None:
        return invalid
    if kind == "integer":
        gold_number = parse_number(gold)
        correct = gold_number is not None and round(number) == gold_number
    else:
        low, high = parse_number(lower), parse_number(upper)
        correct = low is not None and high is not None and low <= number <= high
    return Score(parsed=answer, normalized=normalize_number(number), correct=correct)


def check_medcalc(text: str, *, calculator_id: int, gold: str, lower: str, upper: str) -> Score:
    """Extract the answer from a model's own text and score it (`extract_answer`, then `score_medcalc`)."""
    return score_medcalc(extract_answer(text), calculator_id=calculator_id, gold=gold, lower=lower, upper=upper)


# --- generic typed answers (jsonl datasets, built-in problems) ---------------------------------------------

AnswerType = Literal["number", "integer", "date", "text"]
ANSWER_TYPES: tuple[AnswerType, ...] = ("number", "integer", "date", "text")

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize_text(text: str) -> str:
    """Lower case, punctuation and articles (a, an, the) removed, whitespace collapsed (SQuAD-style)."""
    return " ".join(_ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text.casefold())).split())


def score_typed(answer: str | None, *, gold: str | float, answer_type: AnswerType, tolerance: float = 0.0) -> Score:
    """Score an extracted answer string against a gold answer of the given type.

    number/integer: |answer - gold| <= tolerance (absolute; a 1e-9 relative slack absorbs float noise), and an
    integer answer must be a whole number; date: the same calendar day; text: equal after `normalize_text`.
    """
    if answer is None:
        return Score(parsed=None, normalized=None, correct=None)
    answer = answer.strip()
    invalid = Score(parsed=answer, normalized=None, correct=None)
    if answer_type == "date":
        when, gold_date = parse_date(answer), parse_date(str(gold))
        if when is None:
            return invalid
        return Score(parsed=answer, normalized=format_date(when), correct=when == gold_date)
    if answer_type == "text":
        text = normalize_text(answer)
        if not text:
            return invalid
        return Score(parsed=answer, normalized=text, correct=text == normalize_text(str(gold)))
    number = parse_number(answer)
    gold_number = gold if isinstance(gold, int | float) else parse_number(gold)
    if number is None or gold_number is None:
        return invalid
    close = abs(number - gold_number) <= tolerance + 1e-9 * max(1.0, abs(gold_number))
    correct = close and (answer_type == "number" or number == round(number))
    return Score(parsed=answer, normalized=normalize_number(number), correct=correct)


def check_typed(text: str, *, gold: str | float, answer_type: AnswerType, tolerance: float = 0.0) -> Score:
    """Extract the answer from a model's own text and score it (`extract_answer`, then `score_typed`)."""
    return score_typed(extract_answer(text), gold=gold, answer_type=answer_type, tolerance=tolerance)


# --- free-text instructions (Instruction Induction) --------------------------------------------------------

_INSTRUCTION_LINE = re.compile(
    r"(?:\binstruction\s+was\b[\"'*_]*\s*:?|\b(?:instruction|answer)\b[\"'*_]*\s*[:=])\s*[*_]*\s*(?P<value>[^\n]*)",
    re.IGNORECASE,
)


def extract_instruction(text: str) -> str | None:
    """The instruction a model induced: a JSON "answer"/"instruction" field, else the last `Instruction: ...` or
    `Answer: ...` line, else the whole text (after any thinking). Surrounding quotes are removed; None if empty.
    """
    text = strip_thinking(text).strip()
    field = _last_object_field(text, ("instruction", "answer"))
    if field is not _MISSING:
        return _usable(_value_to_text(field).strip())
    matches = [m for m in _INSTRUCTION_LINE.finditer(text) if m.group("value").strip()]
    value = _clean_value(matches[-1].group("value")) if matches else _clean_value(text)
    return _usable(value)
