"""Datasets: loading, sampling, answer extraction, the MedCalc-Bench rules, and the paper's labels re-scored."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotbridge.datasets import Problem, Score, load_dataset, similarity
from cotbridge.datasets.answers import (
    extract_answer,
    extract_instruction,
    is_reference_error,
    normalize_number,
    parse_date,
    parse_gestational_age,
    parse_number,
    score_medcalc,
    score_typed,
)
from cotbridge.datasets.builtin import ARITHMETIC
from cotbridge.datasets.instruction_induction import InstructionChecker, load_instruction_induction
from cotbridge.datasets.medcalc import load_medcalc
from cotbridge.datasets.similarity import BertScore, TokenF1, bertscore_available, default_similarity, token_f1
from cotbridge.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEDCALC_CSV = DATA / "medcalc-bench" / "test_data.csv"
OUTPUTS = DATA / "genex-medcalc" / "outputs"
INDUCTION = DATA / "instruction-induction"

needs_medcalc = pytest.mark.skipif(
    not MEDCALC_CSV.is_file(), reason=f"MedCalc-Bench test CSV not found at {MEDCALC_CSV} (shared data absent)"
)
needs_outputs = pytest.mark.skipif(
    not (MEDCALC_CSV.is_file() and OUTPUTS.is_dir()),
    reason=f"the paper's released MedCalc outputs not found at {OUTPUTS} (shared data absent)",
)
needs_induction = pytest.mark.skipif(
    not INDUCTION.is_dir(), reason=f"Instruction Induction data not found at {INDUCTION} (shared data absent)"
)

PAPER_FIRST_ROWS = ["353", "561", "875", "981", "32", "449", "199", "425", "108", "712"]


def medcalc(
    answer: str | None, calculator_id: int, gold: str, lower: str | None = None, upper: str | None = None
) -> Score:
    return score_medcalc(answer, calculator_id=calculator_id, gold=gold, lower=lower or gold, upper=upper or gold)


# --- the paper's subset and its labels ----------------------------------------------------------------------


@needs_medcalc
def test_paper_subset_is_pandas_sample_of_the_csv() -> None:
    problems = load_dataset(f"medcalc:{MEDCALC_CSV}", sample=100, seed=42)
    assert [p.id for p in problems[:10]] == PAPER_FIRST_ROWS
    assert len(problems) == 100 and len({p.id for p in problems}) == 100
    everything = load_medcalc(MEDCALC_CSV)
    assert len(everything) == 1047
    positions = np.random.RandomState(42).choice(1047, 100, replace=False)
    assert [p.id for p in problems] == [everything[i].id for i in positions]
    if OUTPUTS.is_dir():  # the released outputs list the same 100 rows in the same order
        released = OUTPUTS / "Qwen_QwQ-32B_zero_shot_original.jsonl"
        rows = [str(json.loads(line)["Row Number"]) for line in released.read_text().splitlines()]
        assert rows == [p.id for p in problems]


@needs_medcalc
def test_medcalc_problem_shape() -> None:
    problem = load_dataset(f"medcalc:{MEDCALC_CSV}", sample=1, seed=42)[0]
    assert isinstance(problem, Problem)
    assert problem.id == "353" and problem.dataset == "medcalc"
    assert [m["role"] for m in problem.prompt] == ["system", "user"]
    system, user = (m["content"] for m in problem.prompt)
    assert "step_by_step_thinking" in system and '"answer"' in system
    assert "A 72-year-old man" in user and "HAS-BLED" in user
    assert problem.question == user
    assert problem.meta["calculator_id"] == 25 and problem.meta["answer_kind"] == "integer"
    assert problem.gold == "5"
    assert problem.check('{"step_by_step_thinking": "H, A, L, E and alcohol", "answer": "5"}').correct is True
    assert problem.check('{"step_by_step_thinking": "...", "answer": "4"}').correct is False
    assert problem.check("I am not sure.").correct is None


def _released_rows() -> list[tuple[str, str, str, str | None, str | None]]:
    """(file, row, answer field, answer, label) per released row; answer/label None for a crashed transfer."""
    rows = []
    for path in sorted(OUTPUTS.glob("*.jsonl")):
        transfer = "_thoughts_to_" in path.name
        answer_key, label_key = ("Target Answer", "Target Result") if transfer else ("LLM Answer", "Result")
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            rows.append((path.name, str(row["Row Number"]), answer_key, row.get(answer_key), row.get(label_key)))
    return rows


@needs_outputs
def test_every_released_label_is_reproduced() -> None:
    """Each of the 86 files' answers, re-scored through `problem.check`, gives the stored Correct/Incorrect."""
    problems = {p.id: p for p in load_medcalc(MEDCALC_CSV)}
    rows = _released_rows()
    assert len({name for name, *_ in rows}) == 86 and len(rows) == 8600
    mismatches, scored, crashed = [], Counter[str](), 0
    for name, row_number, _, answer, label in rows:
        if answer is None:  # a crashed transfer row has no Target keys
            crashed += 1
            continue
        assert label in ("Correct", "Incorrect")
        # The stored answer is what the reference code extracted; wrap it as the model's JSON reply.
        score = problems[row_number].check(json.dumps({"step_by_step_thinking": "...", "answer": answer}))
        scored[label] += 1
        if (score.correct is True) != (label == "Correct"):
            mismatches.append((name, row_number, answer, label, score))
    assert mismatches == []
    assert crashed == 295
    assert scored == {"Correct": 2742, "Incorrect": 5563}


@needs_outputs
def test_transfer_files_source_labels_are_reproduced_too() -> None:
    problems = {p.id: p for p in load_medcalc(MEDCALC_CSV)}
    checked = 0
    for path in sorted(OUTPUTS.glob("*_thoughts_to_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            problem = problems[str(row["Row Number"])]
            score = score_medcalc(
                row["LLM Answer"],
                calculator_id=problem.meta["calculator_id"],
                gold=problem.gold,
                lower=problem.meta["lower_limit"],
                upper=problem.meta["upper_limit"],
            )
            assert (score.correct is True) == (row["Result"] == "Correct"), (path.name, row["Row Number"])
            checked += 1
    assert checked == 4500


# --- MedCalc rules on hand-made cases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "correct", "normalized"),
    [
        ("09/05/2014", True, "09/05/2014"),
        ("9/5/2014", True, "09/05/2014"),
        ("2014-09-05", True, "09/05/2014"),
        ("09/04/2014", False, "09/04/2014"),
        ("LMP 11/29/2013 + 280 days = 09/05/2014", True, "09/05/2014"),
        ("02/30/2014", None, None),
        ("September 5th", None, None),
        ("time data 'N/A' does not match format '%m/%d/%Y'", None, None),
    ],
)
def test_date_calculators_compare_calendar_dates(answer: str, correct: bool | None, normalized: str | None) -> None:
    for calculator_id in (13, 68):
        score = medcalc(answer, calculator_id, "09/05/2014")
        assert (score.correct, score.normalized) == (correct, normalized)


@pytest.mark.parametrize(
    ("answer", "correct", "normalized"),
    [
        ("(4, 0)", True, "(4, 0)"),
        ("('4 weeks', '0 days')", True, "(4, 0)"),
        ("4 weeks and 0 days", True, "(4, 0)"),
        ("4 weeks, 0 days", True, "(4, 0)"),
        ("[4, 0]", True, "(4, 0)"),
        ("4w 0d", True, "(4, 0)"),
        ("4 weeks", True, "(4, 0)"),
        ("(4, 1)", False, "(4, 1)"),
        ("(3, 7)", False, "(3, 7)"),  # compared as written, like the official check
        ("about a month", None, None),
        ("'NoneType' object has no attribute 'group'", None, None),
    ],
)
def test_gestational_age_compares_week_day_pairs(answer: str, correct: bool | None, normalized: str | None) -> None:
    score = medcalc(answer, 69, "('4 weeks', '0 days')")
    assert (score.correct, score.normalized) == (correct, normalized)


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("4", "4", True),
        ("4.0", "4", True),
        ("4.4", "4", True),
        ("3.6", "4", True),
        ("4.6", "4", False),
        ("2.5", "2", True),  # Python's round: ties to even, as the official code (and the released labels)
        ("6.5", "6", True),
        ("0.5", "1", False),
        ("3 out of 5", "3", True),
        ("-1", "-1", True),
        ("name 'N' is not defined", "4", None),
        ("N/A", "4", None),
        ("", "4", None),
    ],
)
def test_integer_calculators_round_then_compare(answer: str, gold: str, correct: bool | None) -> None:
    assert medcalc(answer, 25, gold).correct is correct


@pytest.mark.parametrize(
    ("answer", "correct"),
    [
        ("8.74", True),
        ("9.66", True),
        ("9.2", True),
        ("8.7399", False),
        ("9.6601", False),
        ("9.2 mg/dL", True),
        ("corrected calcium = 9.2", True),
        ("leading zeros in decimal integer literals are not permitted (<string>, line 1)", None),
        ("unknown", None),
    ],
)
def test_decimal_calculators_use_inclusive_limits(answer: str, correct: bool | None) -> None:
    assert medcalc(answer, 7, "9.2", lower="8.74", upper="9.66").correct is correct


def test_unparseable_and_missing_answers_are_invalid() -> None:
    assert medcalc(None, 2, "1", "0.5", "2") == Score(parsed=None, normalized=None, correct=None)
    assert medcalc("no idea", 2, "1", "0.5", "2") == Score(parsed="no idea", normalized=None, correct=None)
    assert medcalc("  ", 2, "1", "0.5", "2").correct is None
    assert is_reference_error("name 'N' is not defined") and not is_reference_error("4.5")


def test_normalized_answers_compare_as_values() -> None:
    assert medcalc("5", 2, "5", "4", "6").normalized == medcalc("5.0", 2, "5", "4", "6").normalized == "5"
    assert medcalc("3/4/2021", 13, "03/04/2021").normalized == "03/04/2021"
    assert medcalc("(4, 0)", 69, "(4, 0)").normalized == medcalc("4 weeks and 0 days", 69, "(4, 0)").normalized
    assert medcalc("0.10300000000000001", 40, "0.103", "0.1", "0.11").normalized == "0.103"


# --- answer extraction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ('{"step_by_step_thinking": "1 + 1 {so}", "answer": "4"}', "4"),
        ('```json\n{"step_by_step_thinking": "a", "answer": "5.0"}\n```\nHope this helps!', "5.0"),
        ("{'step_by_step_thinking': 'the patient\\'s score', 'answer': '3'}", "3"),
        ('Here it is: {"answer": "1"} -- no wait: {"answer": "2"}. Done.', "2"),
        ('{"step_by_step_thinking": "use \\( x \\)", "answer": "02/27/2021"}', "02/27/2021"),
        ('{"step_by_step_thinking": "two\nlines", "answer": 17}', "17"),
        ('{"answer": [4, 0]}', "(4, 0)"),
        ('{"answer": {"weeks": 4, "days": 0}}', "(4, 0)"),
        ('{"Answer": "7"}', "7"),
        ("Working...\nAnswer: 12.5 mL/min", "12.5 mL/min"),
        ("**Final answer:** 7.", "7"),
        ('"step_by_step_thinking": "x", "answer": "4 weeks, 0 days", "note": 1', "4 weeks, 0 days"),
        ('{"step_by_step_thinking": "unterminated, "answer": "6"', "6"),
        ("<think>answer: 9</think>\nanswer: 3", "3"),
        ("no final value here", None),
        ('{"step_by_step_thinking": "x", "answer": "str(short_and_direct_answer_of_the_question)"}', None),
        ('{"answer": ""}', None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_extract_answer_ignores_thinking_before_the_closing_tag() -> None:
    assert extract_answer('<think>{"answer": "1"}</think>The value is {"answer": "2"}') == "2"
    assert extract_answer('<think>{"answer": "1"}</think>no JSON at all') is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5.0),
        ("-3.25", -3.25),
        ("\u22123", -3.0),
        ("1,234.5", 1234.5),
        ("2e-05", 2e-05),
        ("12.5 %", 12.5),
        ("3 out of 5", 3.0),
        ("BMI = 22.9 kg/m²", 22.9),
        ("8.1 mL/min/1.73 m²", 8.1),
        ("4.", 4.0),
        ("nan", None),
        ("none", None),
    ],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


def test_parse_date_and_gestational_age_directly() -> None:
    assert parse_date("3/4/2021") == date(2021, 3, 4)
    assert parse_date("2/29/2023") is None
    assert parse_gestational_age("29+3") == (29, 3)
    assert parse_gestational_age("thirty weeks") is None


# --- number normalization (property) -----------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_whole_numbers_normalize_without_decimals(n: int) -> None:
    assert normalize_number(float(n)) == str(n)
    assert medcalc(f"{n}.0", 2, "0", "-1e13", "1e13").normalized == str(n)


@given(finite)
def test_normalization_is_idempotent_and_keeps_the_value(x: float) -> None:
    text = normalize_number(x)
    assert normalize_number(float(text)) == text
    assert "e" not in text.lower() and not text.startswith("+")
    assert float(text) == pytest.approx(x, rel=1e-11, abs=0.0)


@given(finite, st.integers(min_value=0, max_value=3))
def test_trailing_zeros_and_formatting_do_not_change_the_normal_form(x: float, zeros: int) -> None:
    text = normalize_number(x)
    padded = text + ("." if "." not in text and zeros else "") + "0" * zeros
    parsed = parse_number(padded)
    assert parsed is not None and normalize_number(parsed) == text


# --- generic typed answers ------------------------------------------------------------------------------------


def test_score_typed_rules() -> None:
    assert score_typed("5.0", gold=5, answer_type="integer").correct is True
    assert score_typed("5.5", gold=5, answer_type="integer", tolerance=1).correct is False  # not a whole number
    assert score_typed("3.14", gold=3.14159, answer_type="number", tolerance=0.01).correct is True
    assert score_typed("3.2", gold=3.14159, answer_type="number", tolerance=0.01).correct is False
    assert score_typed("0.3", gold=0.1 + 0.2, answer_type="number").correct is True
    assert score_typed("2021-03-04", gold="3/4/2021", answer_type="date").correct is True
    assert score_typed("The Eiffel Tower!", gold="eiffel tower", answer_type="text").correct is True
    assert score_typed("eleven", gold=11, answer_type="integer").correct is None


# --- built-in, jsonl, instruction induction -------------------------------------------------------------------


def test_builtin_arithmetic() -> None:
    problems = load_dataset("builtin:arithmetic")
    assert len(problems) == len(ARITHMETIC) == 20
    assert len({p.id for p in problems}) == 20
    for problem, (question, answer) in zip(problems, ARITHMETIC, strict=True):
        assert problem.dataset == "arithmetic" and problem.question == question and problem.gold == answer
        assert [m["role"] for m in problem.prompt] == ["system", "user"]
        assert problem.check(f"Let me compute.\nAnswer: {answer}").correct is True
        assert problem.check(f"Answer: {answer + 1}").correct is False
        assert problem.check("I cannot tell.").correct is None
    positions = np.random.RandomState(7).choice(20, 5, replace=False)
    assert [p.id for p in load_dataset("builtin:arithmetic", sample=5, seed=7)] == [problems[i].id for i in positions]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_jsonl_loading_and_checking(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"id": 1, "question": "2 + 3?", "answer": 5},
            {"id": "pi", "question": "Pi to two places?", "answer": 3.14159, "tolerance": 0.005},
            {"id": "d", "question": "Day after 2/28/2024?", "answer": "02/29/2024", "answer_type": "date"},
            "",
            {"id": "t", "question": "Capital of France?", "answer": "Paris"},
            {"id": "n", "question": "Seven times six?", "answer": "42", "answer_type": "integer"},
        ],
    )
    problems = load_dataset(f"jsonl:{path}")
    assert [p.id for p in problems] == ["1", "pi", "d", "t", "n"]
    assert [p.meta["answer_type"] for p in problems] == ["number", "number", "date", "text", "integer"]
    one, pi, day, capital, product = problems
    assert one.question == "2 + 3?" and one.dataset == "jsonl"
    assert one.check('{"answer": "5.0"}').correct is True
    assert pi.check("answer: 3.14").correct is True and pi.check("answer: 3.13").correct is False
    assert day.check("Answer: 2/29/2024").correct is True
    assert capital.check("Answer: paris.").correct is True
    assert product.check("Answer: 42").normalized == "42"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": 1, "question": "q"', "line 1: not valid JSON"),
        ('["a"]', "line 1: expected a JSON object"),
        ('{"id": 1, "answer": 2}', "missing field(s) 'question'"),
        ('{"id": 1, "question": "q", "answer": 2, "answer_type": "float"}', "field 'answer_type'"),
        ('{"id": 1, "question": "q", "answer": 2, "tolerance": -1}', "field 'tolerance' must be >= 0"),
        ('{"id": 1, "question": "q", "answer": "x", "tolerance": 1}', "'tolerance' only applies"),
        ('{"id": 1, "question": "q", "answer": "five", "answer_type": "number"}', "is not a number"),
        ('{"id": 1, "question": "q", "answer": 2.5, "answer_type": "integer"}', "is not a whole number"),
        ('{"id": 1, "question": "q", "answer": "soon", "answer_type": "date"}', "is not a date"),
        ('{"id": null, "question": "q", "answer": 2}', "field 'id'"),
        ('{"id": 1, "question": "", "answer": 2}', "field 'question'"),
    ],
)
def test_jsonl_bad_rows_raise_clear_errors(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [line])
    with pytest.raises(ConfigError, match="bad.jsonl") as caught:
        load_dataset(f"jsonl:{path}")
    assert message in str(caught.value)
    assert caught.value.__cause__ is None


def test_jsonl_duplicate_ids_and_empty_files(tmp_path: Path) -> None:
    row = {"id": "a", "question": "q", "answer": 1}
    with pytest.raises(ConfigError, match="line 2: id 'a' already used on line 1"):
        load_dataset(f"jsonl:{write_jsonl(tmp_path / 'dup.jsonl', [row, row])}")
    with pytest.raises(ConfigError, match="no problems"):
        load_dataset(f"jsonl:{write_jsonl(tmp_path / 'empty.jsonl', [''])}")


def make_induction_folder(root: Path) -> Path:
    for sub in ("annotations", "induction_input"):
        (root / sub).mkdir(parents=True)
    gold = {"annotations": ["Write the opposite of the word.", "Output an antonym of the input."]}
    (root / "annotations" / "antonyms.json").write_text(json.dumps(gold))
    (root / "annotations" / "sum.json").write_text(json.dumps({"annotations": ["Add the two numbers."]}))
    prompt = "Here are the input-output pairs:\n\nInput: hot\nOutput: cold\n\nThe instruction was"
    examples = {"examples": {str(i): {"input": prompt, "metadata": {"examples_seen": "hot -> cold"}} for i in (1, 2)}}
    (root / "induction_input" / "antonyms.json").write_text(json.dumps(examples))
    (root / "induction_input" / "sum.json").write_text(json.dumps(examples))
    return root


def test_instruction_induction_loading_and_checking(tmp_path: Path) -> None:
    folder = make_induction_folder(tmp_path / "ii")
    problems = load_dataset(f"instruction-induction:{folder}")
    assert [p.id for p in problems] == ["antonyms/1", "antonyms/2", "sum/1", "sum/2"]
    first = problems[0]
    assert first.dataset == "instruction-induction" and first.meta["task"] == "antonyms"
    assert [m["role"] for m in first.prompt] == ["system", "user"]
    assert first.question.endswith("The instruction was")
    assert first.gold == ["Write the opposite of the word.", "Output an antonym of the input."]
    score = first.check("Each output is the reverse meaning.\nInstruction: write the opposite of the word")
    assert score.metric in ("bertscore", "token-f1") and score.correct is True
    assert [p.id for p in load_dataset(f"instruction-induction:{folder}#sum")] == ["sum/1", "sum/2"]


def test_instruction_checker_token_f1() -> None:
    checker = InstructionChecker(gold=("Write the opposite of the word.", "Output an antonym."), similarity=TokenF1())
    good = checker("Instruction: Write the opposite of each word.")
    assert (
        good.metric == "token-f1"
        and good.correct is True
        and good.similarity
        == pytest.approx(token_f1("Write the opposite of each word", "Write the opposite of the word."))
    )
    assert good.parsed == "Write the opposite of each word"
    bad = checker("Instruction: Add the numbers together.")
    assert bad.correct is False and bad.similarity == 0.0
    assert checker("").correct is None
    assert extract_instruction('The instruction was "Sort the letters"') == "Sort the letters"
    assert extract_instruction('{"instruction": "Reverse the word"}') == "Reverse the word"
    assert token_f1("the Cat sat", "cat  sat!") == 1.0 and token_f1("", "") == 1.0


def test_default_similarity_falls_back_to_token_f1_offline() -> None:
    expected = BertScore if bertscore_available() else TokenF1
    assert isinstance(default_similarity(), expected)


def test_bertscore_loads_the_cached_model_by_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """BertScore hands bert_score a local snapshot path (never a hub name) and keeps the best F1."""
    created: list[dict[str, object]] = []

    class FakeScorer:
        def __init__(self, **kwargs: object) -> None:
            created.append(kwargs)

        def score(self, cands: list[str], refs: list[str], verbose: bool = False) -> tuple[object, object, object]:
            f1 = np.array([token_f1(c, r) for c, r in zip(cands, refs, strict=True)])
            return f1, f1, f1

    fake = type(sys)("bert_score")
    fake.BERTScorer = FakeScorer  # type: ignore[attr-defined]
    fake.__file__ = str(tmp_path / "bert_score" / "__init__.py")
    monkeypatch.setitem(sys.modules, "bert_score", fake)
    monkeypatch.setattr(similarity, "cached_model_dir", lambda model_type: tmp_path / "snapshot")
    scorer = BertScore()
    assert scorer.best("write the opposite", ["add numbers", "write the opposite"]) == 1.0
    assert scorer.best("anything", []) == 0.0
    assert len(created) == 1 and created[0]["model_type"] == str(tmp_path / "snapshot")
    assert created[0]["num_layers"] == 17


@needs_induction
def test_instruction_induction_real_data() -> None:
    problems = load_instruction_induction(INDUCTION, similarity=TokenF1())
    assert len(problems) == 24 * 100
    chosen = load_dataset(f"instruction-induction:{INDUCTION}#antonyms,sum", sample=10, seed=3)
    assert len(chosen) == 10 and {p.meta["task"] for p in chosen} <= {"antonyms", "sum"}
    antonyms = next(p for p in problems if p.id == "antonyms/1")
    assert "Input: informed\nOutput: uninformed" in antonyms.question
    assert "Write an antonym of the following word:" in antonyms.gold
    assert antonyms.check("Instruction: Write an antonym of the following word.").similarity == 1.0


# --- bad specs and files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("medcalc", "has no kind"),
        ("csv:/tmp/x.csv", "unknown kind 'csv'"),
        ("medcalc:", "names no file"),
        ("medcalc:/nonexistent/test_data.csv", "no such file: /nonexistent/test_data.csv"),
        ("jsonl:/nonexistent/x.jsonl", "no such file"),
        ("builtin:geometry", "no built-in set 'geometry'"),
        ("instruction-induction:/nonexistent", "has no annotations/ and induction_input/"),
    ],
)
def test_bad_specs_raise_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataset(spec)
    assert message in str(caught.value)


def test_bad_sample_and_seed() -> None:
    with pytest.raises(ConfigError, match="only 20 problems"):
        load_dataset("builtin:arithmetic", sample=21)
    with pytest.raises(ConfigError, match="positive integer"):
        load_dataset("builtin:arithmetic", sample=0)
    with pytest.raises(ConfigError, match="seed must be"):
        load_dataset("builtin:arithmetic", sample=2, seed=-1)


def test_unknown_instruction_induction_task(tmp_path: Path) -> None:
    folder = make_induction_folder(tmp_path / "ii")
    with pytest.raises(ConfigError, match="unknown task.*'rhymes'.*choose from: antonyms, sum"):
        load_dataset(f"instruction-induction:{folder}#rhymes")


MEDCALC_HEADER = [
    "Row Number", "Calculator ID", "Calculator Name", "Category", "Output Type", "Note ID", "Note Type",
    "Patient Note", "Question", "Relevant Entities", "Ground Truth Answer", "Lower Limit", "Upper Limit",
    "Ground Truth Explanation",
]  # fmt: skip


def write_medcalc(path: Path, rows: list[dict[str, str]], header: list[str] = MEDCALC_HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def medcalc_row(**changes: str) -> dict[str, str]:
    row = dict.fromkeys(MEDCALC_HEADER, "x")
    row.update({"Row Number": "1", "Calculator ID": "7", "Output Type": "decimal", "Patient Note": "Line 1\nLine 2",
                "Ground Truth Answer": "9.2", "Lower Limit": "8.74", "Upper Limit": "9.66"})  # fmt: skip
    row.update(changes)
    return row


def test_medcalc_small_csv_with_multiline_notes(tmp_path: Path) -> None:
    path = write_medcalc(tmp_path / "test_data.csv", [medcalc_row(), medcalc_row(**{"Row Number": "2"})])
    problems = load_dataset(f"medcalc:{tmp_path}")  # a folder holding test_data.csv works too
    assert [p.id for p in problems] == ["1", "2"]
    assert "Line 1\nLine 2" in problems[0].question
    assert problems[0].check('{"answer": "9.66"}').correct is True
    assert load_dataset(f"medcalc:{path}", sample=1, seed=0)[0].id in ("1", "2")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Lower Limit": "low"}, "data row 1 (Row Number '1'): field 'Lower Limit' = 'low' is not a number"),
        ({"Calculator ID": "seven"}, "field 'Calculator ID' = 'seven' is not an integer"),
        ({"Calculator ID": "13", "Ground Truth Answer": "soon"}, "field 'Ground Truth Answer' = 'soon' is not a date"),
        ({"Calculator ID": "69", "Ground Truth Answer": "x"}, "is not a gestational age"),
        ({"Patient Note": ""}, "field 'Patient Note' is empty"),
    ],
)
def test_medcalc_bad_rows_name_file_row_and_field(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    path = write_medcalc(tmp_path / "bad.csv", [medcalc_row(**changes)])
    with pytest.raises(ConfigError) as caught:
        load_dataset(f"medcalc:{path}")
    text = str(caught.value)
    assert str(path) in text and message in text and "test_data.csv" in text  # the fix names the right file


def test_medcalc_bad_files(tmp_path: Path) -> None:
    header = [c for c in MEDCALC_HEADER if c != "Upper Limit"]
    with pytest.raises(ConfigError, match="missing column.*'Upper Limit'"):
        load_dataset(f"medcalc:{write_medcalc(tmp_path / 'a.csv', [medcalc_row()], header)}")
    latin = tmp_path / "b.csv"
    latin.write_bytes(",".join(MEDCALC_HEADER).encode() + b"\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match="not a readable UTF-8 CSV") as caught:
        load_dataset(f"medcalc:{latin}")
    assert caught.value.__cause__ is None
    with pytest.raises(ConfigError, match="no rows"):
        load_dataset(f"medcalc:{write_medcalc(tmp_path / 'c.csv', [])}")


@needs_medcalc
def test_a_byte_order_mark_is_not_data(tmp_path: Path) -> None:
    # Spreadsheet programs save UTF-8 CSV and JSON Lines with a byte order mark in front.
    csv_copy = tmp_path / "test_data.csv"
    head = MEDCALC_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    csv_copy.write_text("\ufeff" + "".join(head[:40]), encoding="utf-8")
    assert [p.id for p in load_medcalc(csv_copy)] == [p.id for p in load_medcalc(MEDCALC_CSV)][
        : len(load_medcalc(csv_copy))
    ]
    lines = tmp_path / "q.jsonl"
    lines.write_text('\ufeff{"id": "a", "question": "1 + 1?", "answer": 2}\n', encoding="utf-8")
    assert [p.id for p in load_dataset(f"jsonl:{lines}")] == ["a"]
