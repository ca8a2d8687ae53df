"""Sentence splitting of chains of thought: the round trip, the whitespace convention, the rules, real CoTs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotbridge.cot.sentences import last_complete_sentence_end, sentence_spans, split_sentences

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GENEX = SHARED_DATA / "genex-medcalc"

# --- strategies --------------------------------------------------------------------------------------------------

# Realistic pieces of a CoT, glued with realistic separators (and sometimes with nothing at all).
PIECES = [
    "The BMI is 22.86 kg/m^2.",
    "BMI = 70 / (1.75^2) = 22.86 kg/m^2.",
    "Give 3.5 mg. of drug",
    "0.6643",
    "e.g.",
    "i.e.",
    "Dr.",
    "Dr. Smith",
    "vs.",
    "approx.",
    "etc.",
    "U.S.",
    "J. R. Smith",
    "1.",
    "2)",
    "- item",
    "* item",
    "Step 3:",
    "1. Compute the BMI.",
    "Wait...",
    "Hmm…",
    "Really?",
    "Yes!",
    'He said "stop."',
    "(see above.)",
    "\\frac{a}{b}",
    "\\( x = 5. Y \\)",
    "\\[ BMI = \\frac{70}{1.75^2}. \\]",
    "$x. Y$",
    "$$ a. B $$",
    "`code. Here`",
    "中文句子。",
    "the patient",
    "Next",
    "so",
    "42",
    ":",
    "**Step 2.**",
    "### Heading",
    "| a | b |",
    "<think>",
]
SEPARATORS = ["", " ", " ", " ", "  ", "\n", "  \n", "\n\n", "\t", "\r\n", " \n ", "\n- ", "\n1. "]

realistic_text = st.lists(
    st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(PIECES)),
    max_size=30,
).map(lambda parts: "".join(sep + piece for sep, piece in parts))

# Random text over an alphabet dense in the characters the splitter reacts to.
punctuation_text = st.lists(
    st.sampled_from(
        list("aZ19 .!?…\n\r\t\u2028:;,-*()[]{}\"'”$\\`。」#|<>") + ["...", "e.g.", "Dr.", "\\(", "\\)", "$$"]
    ),
    max_size=120,
).map("".join)

any_text = st.one_of(st.text(max_size=300), realistic_text, punctuation_text)


def boundaries(text: str) -> list[int]:
    return [start for start, _ in sentence_spans(text)[1:]]


# --- properties --------------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_round_trip_is_exact(text: str) -> None:
    assert "".join(split_sentences(text)) == text


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_spans_are_contiguous_and_cover_the_text(text: str) -> None:
    spans = sentence_spans(text)
    if not text:
        assert spans == []
        return
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end == start
    assert all(start < end for start, end in spans)
    assert [text[s:e] for s, e in spans] == split_sentences(text)


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_never_splits_inside_a_word(text: str) -> None:
    for b in boundaries(text):
        assert not (text[b - 1].isalnum() and text[b].isalnum()), (text, b)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_separator_starts_the_next_sentence(text: str) -> None:
    # Whitespace between sentences is at the start of the following one: a sentence after the first starts with
    # whitespace (or directly follows CJK sentence punctuation), and the sentence before it does not end with any.
    for b in boundaries(text):
        assert text[b].isspace() or text[b - 1] in "。！？」』”’）)]", (text, b)
        assert not text[b - 1].isspace(), (text, b)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_every_sentence_has_content_unless_the_text_is_blank(text: str) -> None:
    sentences = split_sentences(text)
    if text.strip():
        assert all(s.strip() for s in sentences)
    elif text:
        assert sentences == [text]


@settings(max_examples=300, deadline=None)
@given(realistic_text)
def test_no_split_inside_decimals_or_protected_latex(text: str) -> None:
    for b in boundaries(text):
        assert not re.search(r"\d\.\Z", text[:b]) or not text[b : b + 1].isdigit()
    cuts = set(boundaries(text))
    for m in re.finditer(r"\\\(.*?\\\)|\\\[.*?\\\]|\\frac\{a\}\{b\}", text):
        if "\n" not in m.group(0):
            assert not any(m.start() < b < m.end() for b in cuts), (text, m.group(0))


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_last_complete_sentence_end_is_a_sentence_edge(text: str) -> None:
    i = last_complete_sentence_end(text)
    assert 0 <= i <= len(text)
    spans = sentence_spans(text)
    allowed = {0} | {start for start, _ in spans}
    if spans:
        start, end = spans[-1]
        allowed.add(start + len(text[start:end].rstrip()))
    assert i in allowed
    assert not text[:i] or not text[i - 1].isspace()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=10))
def test_appending_sentences_rebuilds_the_cot(pieces: list[str]) -> None:
    # The ensemble appends chosen sentences one at a time; the separator travels with each sentence.
    cot = " ".join(pieces)
    rebuilt = ""
    for sentence in split_sentences(cot):
        rebuilt += sentence
    assert rebuilt == cot


# --- hand-made cases ---------------------------------------------------------------------------------------------

CASES: list[tuple[str, list[str]]] = [
    # empty and blank
    ("", []),
    ("   ", ["   "]),
    ("\n\n\t ", ["\n\n\t "]),
    ("x", ["x"]),
    ("Hello.  ", ["Hello.  "]),
    ("  Hello. World.", ["  Hello.", " World."]),
    # decimals and units
    ("The dose is 0.6643 mg/kg. Next.", ["The dose is 0.6643 mg/kg.", " Next."]),
    ("Take 3.5 mg daily. It works.", ["Take 3.5 mg daily.", " It works."]),
    ("Give 3.5 mg. of the drug. Then stop.", ["Give 3.5 mg. of the drug.", " Then stop."]),
    ("The dose is 5 mg. Then we wait.", ["The dose is 5 mg.", " Then we wait."]),
    ("It was 2. The next was 3.", ["It was 2.", " The next was 3."]),
    ("The total is 5. 3 points are added.", ["The total is 5.", " 3 points are added."]),
    ("ln(73)=4.29. times -0.2 gives x.", ["ln(73)=4.29.", " times -0.2 gives x."]),
    ("RR = 0.41 s. sqrt(RR) = 0.64.", ["RR = 0.41 s.", " sqrt(RR) = 0.64."]),
    ("It was positive for M. pneumoniae here.", ["It was positive for M. pneumoniae here."]),
    (
        "Risks: 1. disease present, 2. signs of disease, 3. acute event",
        ["Risks: 1. disease present,", " 2. signs of disease,", " 3. acute event"],
    ),
    ("Convert to ms. 1. Recall it.", ["Convert to ms.", " 1. Recall it."]),  # "ms" is a unit, "Ms." a title
    ("Ms. Jones came.", ["Ms. Jones came."]),
    ("It is 100 MME.\nNext line.", ["It is 100 MME.", "\nNext line."]),  # not "Mme."
    # abbreviations
    ("Use e.g. Aspirin or i.e. the drug.", ["Use e.g. Aspirin or i.e. the drug."]),
    ("Dr. Smith saw Mr. Jones. He agreed.", ["Dr. Smith saw Mr. Jones.", " He agreed."]),
    ("Compare A vs. B. Then decide.", ["Compare A vs. B.", " Then decide."]),
    ("It is approx. 5 mg. Fine.", ["It is approx. 5 mg.", " Fine."]),
    ("Dogs, cats, etc. and more.", ["Dogs, cats, etc. and more."]),
    ("Dogs, cats, etc. The end.", ["Dogs, cats, etc.", " The end."]),
    ("The U.S. Army base. The U.S. The end.", ["The U.S. Army base.", " The U.S.", " The end."]),
    ("Smith et al. showed this. Jones et al. The end.", ["Smith et al. showed this.", " Jones et al.", " The end."]),
    ("Hodges et al. 1971 proposed it.", ["Hodges et al. 1971 proposed it."]),
    ("As Smith et al. (2004) found. Next.", ["As Smith et al. (2004) found.", " Next."]),
    # inline steps
    (
        "Age points (A) Step 3: Evaluate \\[ x = 2 \\] Step 4: Add them.",
        ["Age points (A)", " Step 3: Evaluate \\[ x = 2 \\]", " Step 4: Add them."],
    ),
    ("Done with it ### Step 2: Sum", ["Done with it", " ### Step 2: Sum"]),
    ("**Step 1: Add.** **Step 2: Halve.**", ["**Step 1: Add.**", " **Step 2: Halve.**"]),
    ("As in Step 2: we add. Then x - Step 3: no.", ["As in Step 2: we add.", " Then x - Step 3: no."]),
    ("See fig. 3 and No. 5 and p. 12 here.", ["See fig. 3 and No. 5 and p. 12 here."]),
    ("Smoking? No. Age 45.", ["Smoking?", " No.", " Age 45."]),
    ("She is 65 y.o. and has CHF.", ["She is 65 y.o. and has CHF."]),
    # initials
    ("John F. Kennedy was here. He left.", ["John F. Kennedy was here.", " He left."]),
    ("J. R. Smith wrote it.", ["J. R. Smith wrote it."]),
    ("The level is 4 mmol/L. But it rose.", ["The level is 4 mmol/L.", " But it rose."]),
    ("The class is B. The next one.", ["The class is B.", " The next one."]),
    ("It is a Class B. But why?", ["It is a Class B.", " But why?"]),
    # numbered steps and lists
    ("1. Compute the BMI. 2. Compare it.", ["1. Compute the BMI.", " 2. Compare it."]),
    ("1. Compute the BMI.\n2. Compare it.", ["1. Compute the BMI.", "\n2. Compare it."]),
    ("Steps:\n1) weigh\n2) measure", ["Steps:", "\n1) weigh", "\n2) measure"]),
    ("Items:\n- first\n* second\n+ third\n• fourth", ["Items:", "\n- first", "\n* second", "\n+ third", "\n• fourth"]),
    ("Options:\na) one\n(b) two\nB. three", ["Options:", "\na) one", "\n(b) two", "\nB. three"]),
    ("Step 3: add them.\nStep 4: divide.", ["Step 3: add them.", "\nStep 4: divide."]),
    ("Step 3. Compute the score. Next.", ["Step 3. Compute the score.", " Next."]),
    ("**Step 1.** Compute. **Step 2.** Add.", ["**Step 1.** Compute.", " **Step 2.** Add."]),
    ("A. The first option. B. The second.", ["A. The first option.", " B. The second."]),
    (
        "The criteria: 1. Age <45 years 2. No chest pain 3. No prior PE",
        ["The criteria: 1. Age <45 years", " 2. No chest pain", " 3. No prior PE"],
    ),
    (
        "Convert to ms. 1. Recall it: QTc = 0.32 * HR + 50 2. Plug in: 72 - 4.7 = 67.3 3. Multiply.",
        ["Convert to ms.", " 1. Recall it: QTc = 0.32 * HR + 50", " 2. Plug in: 72 - 4.7 = 67.3", " 3. Multiply."],
    ),
    ("Total score: 1. But wait, no.", ["Total score: 1.", " But wait, no."]),
    ("Corrected Ca. The value is low.", ["Corrected Ca.", " The value is low."]),
    ("Score is 2 3. The end.", ["Score is 2 3.", " The end."]),  # "3." without a "2." marker before: no enumeration
    # headings, tables, tags
    (
        "# Heading\nText here\n## Sub\n> quote\n| a | b |\n| 1 | 2 |",
        ["# Heading", "\nText here", "\n## Sub", "\n> quote", "\n| a | b |", "\n| 1 | 2 |"],
    ),
    ("Let me answer.\n<output> done", ["Let me answer.", "\n<output> done"]),
    # formulas and equations
    ("BMI = 70 / (1.75^2) = 22.86 kg/m^2. Next.", ["BMI = 70 / (1.75^2) = 22.86 kg/m^2.", " Next."]),
    ("So 22 + 0.305/2.7225 ≈ 22.11. Check it.", ["So 22 + 0.305/2.7225 ≈ 22.11.", " Check it."]),
    ("x = 5! = 120. Yes.", ["x = 5! = 120.", " Yes."]),
    # ellipses
    ("Wait... let me think. Hmm... The answer.", ["Wait... let me think.", " Hmm...", " The answer."]),
    ("It is approximately... 0.9129 here.", ["It is approximately... 0.9129 here."]),
    ("It is… 26 days. So… Next.", ["It is… 26 days.", " So…", " Next."]),
    ("Let me confirm...\nThe rule.", ["Let me confirm...", "\nThe rule."]),
    # quotes and brackets after the period
    ('He said "stop." Then he left.', ['He said "stop."', " Then he left."]),
    ('He said "stop." then he left.', ['He said "stop." then he left.']),
    ("Fine (see above.) Next one.", ["Fine (see above.)", " Next one."]),
    ("It is “a term.” So what.", ["It is “a term.”", " So what."]),
    ("[Really.] Yes.", ["[Really.]", " Yes."]),
    # question and exclamation marks
    ("Is it right? Yes! Really?! No.", ["Is it right?", " Yes!", " Really?!", " No."]),
    ("Prior stroke? none; female? no.", ["Prior stroke? none; female? no."]),
    ("Is it 5? 6 is also possible.", ["Is it 5?", " 6 is also possible."]),
    # newlines
    ("Para one.\n\nPara two.", ["Para one.", "\n\nPara two."]),
    ("x = 5.\n\n\n   y = 6.", ["x = 5.", "\n\n\n   y = 6."]),
    ("A line without a period\n\nanother paragraph", ["A line without a period", "\n\nanother paragraph"]),
    (
        "This is a long sentence that\nwraps onto the next line. Done.",
        ["This is a long sentence that\nwraps onto the next line.", " Done."],
    ),
    ("The history of\nCOPD and asthma.", ["The history of\nCOPD and asthma."]),
    ("The values are 3,\n4 and 5.", ["The values are 3,\n4 and 5."]),
    ("End of line.\nstarts lowercase", ["End of line.", "\nstarts lowercase"]),
    ("Total ≈ 75.355 kg\nWe continue", ["Total ≈ 75.355 kg", "\nWe continue"]),
    ("Hard break  \nnext line", ["Hard break", "  \nnext line"]),
    ("The formula is:\nBMI = w / h^2", ["The formula is:", "\nBMI = w / h^2"]),
    ("Line one\r\nLine two.\r\n\r\nPara.", ["Line one", "\r\nLine two.", "\r\n\r\nPara."]),
    ("Dr.\nSmith came.", ["Dr.\nSmith came."]),
    ("e.g.\nthe case", ["e.g.\nthe case"]),
    # LaTeX and math
    ("Compute \\frac{a. B}{b} now. Next.", ["Compute \\frac{a. B}{b} now.", " Next."]),
    ("Then \\( x. Y \\) holds. Next.", ["Then \\( x. Y \\) holds.", " Next."]),
    ("So \\[ 620 \\div 7 = 88 \\text{ weeks.} \\] Then.", ["So \\[ 620 \\div 7 = 88 \\text{ weeks.} \\] Then."]),
    (
        "The formula is:\n\\[\nBMI = \\frac{w}{h^2}.\n\\]\nWhere w is weight.",
        ["The formula is:", "\n\\[\nBMI = \\frac{w}{h^2}.\n\\]", "\nWhere w is weight."],
    ),
    ("We use $x. Y$ here. Next.", ["We use $x. Y$ here.", " Next."]),
    ("It costs $5. Then $10.", ["It costs $5.", " Then $10."]),
    ("Use $$ a. B $$ now. Next.", ["Use $$ a. B $$ now.", " Next."]),
    ("Env \\begin{align} a. B \\end{align} ok. Next.", ["Env \\begin{align} a. B \\end{align} ok.", " Next."]),
    ("Unclosed \\( x. Y here. Next.", ["Unclosed \\( x.", " Y here.", " Next."]),  # protects nothing
    ("Run `print(1). Done` now. Next.", ["Run `print(1). Done` now.", " Next."]),
    # CJK punctuation
    ("中文句子。下一个句子！好的", ["中文句子。", "下一个句子！", "好的"]),
    ("他说「好。」然后走了。", ["他说「好。」", "然后走了。"]),
    ("他说「好。」 然后走了。", ["他说「好。」", " 然后走了。"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_hand_made_cases(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
    assert "".join(expected) == text  # the expectation itself respects the round trip


def test_filtered_cot_style_splits_at_each_hard_break() -> None:
    cot = (
        "Okay, let's tackle this Child-Pugh Score calculation.  \n"
        "The note says the albumin level is 3.1 g/dL.  \n"
        "The Child-Pugh criteria for albumin are:  \n"
        "- >3.5: 1 point  \n"
        "- 2.8-3.5: 2 points  \n"
        "Hmm, maybe I got that mixed up. Let me think again.  \n"
        "\\[ \\text{Score} = 1 + 2 + 2 \\]  \n"
        "So total is 59.1 + 16.255 ≈ 75.355 kg"
    )
    assert split_sentences(cot) == [
        "Okay, let's tackle this Child-Pugh Score calculation.",
        "  \nThe note says the albumin level is 3.1 g/dL.",
        "  \nThe Child-Pugh criteria for albumin are:",
        "  \n- >3.5: 1 point",
        "  \n- 2.8-3.5: 2 points",
        "  \nHmm, maybe I got that mixed up.",
        " Let me think again.",
        "  \n\\[ \\text{Score} = 1 + 2 + 2 \\]",
        "  \nSo total is 59.1 + 16.255 ≈ 75.355 kg",
    ]


# --- last_complete_sentence_end ----------------------------------------------------------------------------------

LAST_COMPLETE: list[tuple[str, str]] = [
    ("", ""),
    ("   ", ""),
    ("Hello", ""),
    ("The BMI is 22.86. Next we comp", "The BMI is 22.86."),
    ("The BMI is 22.86. Next we compute it.", "The BMI is 22.86. Next we compute it."),
    ("A first one. A second.\n", "A first one. A second."),
    ("Done!  ", "Done!"),
    ('He said "stop."', 'He said "stop."'),
    ("Is it right? Maybe", "Is it right?"),
    ("Let me think...", "Let me think..."),
    ("First.\nCompute BMI\n", "First.\nCompute BMI"),  # a finished line counts as complete
    ("First.\nCompute BMI", "First."),  # ... an unfinished one does not
    ("- item one\n- item tw", "- item one"),
    ("- item one\n- item two\n", "- item one\n- item two"),
    ("The history of\n", ""),  # a wrapped line is not finished
    ("The formula is:", ""),
    ("Calculate BMI =", ""),
    ("We saw Dr.", ""),
    ("For example, e.g.", ""),
    ("One. 2.", "One."),  # only a list marker
    ("One. \\[ x = 5.", "One."),  # inside unclosed display math
    ("One. Values {a, b.", "One."),  # inside an unclosed brace group
    ("中文句子。下一个", "中文句子。"),
]


@pytest.mark.parametrize(("text", "complete"), LAST_COMPLETE)
def test_last_complete_sentence_end(text: str, complete: str) -> None:
    assert text[: last_complete_sentence_end(text)] == complete


def test_last_complete_sentence_end_trims_a_capped_generation() -> None:
    prefix = "The patient weighs 70 kg. The height is 1.75 m."
    generation = " So BMI = 70 / (1.75^2) = 22.86 kg/m^2. Next, we compare it with the cut-off of 25 kg"
    cut = last_complete_sentence_end(generation)
    assert generation[:cut] == " So BMI = 70 / (1.75^2) = 22.86 kg/m^2."
    # The kept part is whole sentences and carries its own separator.
    assert split_sentences(prefix + generation[:cut]) == split_sentences(prefix) + [generation[:cut]]


def test_pathological_inputs_stay_fast() -> None:
    inputs = [
        "a" + " " * 100_000 + "\nb",
        "\\( x. Y " * 10_000,
        "\\[ x. Y " * 10_000,
        "\\begin{x} a. B " * 10_000,
        "$ x. Y " * 10_000,
        "\\frac{" * 20_000,
        "... " * 25_000,
        " 5. X" * 20_000,
        "a\n" * 50_000,
    ]
    for text in inputs:
        started = time.perf_counter()
        assert "".join(split_sentences(text)) == text
        last_complete_sentence_end(text)
        assert time.perf_counter() - started < 2.0, text[:20]


# --- real chains of thought --------------------------------------------------------------------------------------


def _real_cots() -> list[str]:
    cots: list[str] = []
    for path in sorted((GENEX / "without_answer").glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            cots.extend(json.loads(line).get("LLM Thinking Without Answer") or "" for line in f if line.strip())
    for path in sorted((GENEX / "outputs").glob("*_thoughts_to_*.jsonl")):
        with path.open(encoding="utf-8") as f:
            cots.extend(json.loads(line).get("LLM Raw Thinking") or "" for line in f if line.strip())
    return cots


needs_data = pytest.mark.skipif(
    not (GENEX / "without_answer").is_dir() or not (GENEX / "outputs").is_dir(),
    reason=f"the genex-medcalc CoTs are not present at {GENEX} (shared data folder beside the repository)",
)


@pytest.fixture(scope="module")
def real_cots() -> list[str]:
    cots = _real_cots()
    assert len(cots) > 1000
    return cots


@needs_data
def test_real_cots_round_trip_and_keep_decimals_whole(real_cots: list[str]) -> None:
    started = time.perf_counter()
    split = [split_sentences(cot) for cot in real_cots]
    elapsed = time.perf_counter() - started
    total = sum(len(cot) for cot in real_cots)
    problems: list[str] = []
    for cot, sentences in zip(real_cots, split, strict=True):
        assert "".join(sentences) == cot
        position = 0
        for sentence in sentences[:-1]:
            position += len(sentence)
            before, after = cot[position - 1], cot[position]
            if before.isalnum() and after.isalnum():
                problems.append(f"inside a word: {cot[position - 30 : position + 30]!r}")
            if position >= 2 and before == "." and cot[position - 2].isdigit() and after.isdigit():
                problems.append(f"inside a decimal: {cot[position - 30 : position + 30]!r}")
    assert not problems, problems[:5]
    # Linear-time splitting: the whole corpus (about 12 MB) takes about a second; allow slow CI machines.
    assert elapsed < 0.5 * total / 1e6 + 5.0


@needs_data
def test_real_filtered_cots_split_at_their_hard_breaks(real_cots: list[str]) -> None:
    # The answer filter re-joined sentences with "  \n"; outside math, each of those must be a boundary.
    found = missed = 0
    for cot in real_cots:
        cuts = set(boundaries(cot))
        for m in re.finditer(r"(?<=\S)  \n(?=\S)", cot):
            found += 1
            if m.start() not in cuts:
                missed += 1
    assert found > 10_000
    assert missed / found < 0.01


@needs_data
def test_real_cots_last_complete_sentence_end(real_cots: list[str]) -> None:
    for cot in real_cots[:2000]:
        i = last_complete_sentence_end(cot)
        assert 0 <= i <= len(cot)
        # Cutting a CoT in the middle of its last sentence never keeps the partial sentence.
        spans = sentence_spans(cot)
        if len(spans) >= 2:
            start, end = spans[-1]
            middle = start + (end - start) // 2
            if cot[middle - 1 : middle + 1].isalnum():  # cut inside a word: certainly incomplete
                assert last_complete_sentence_end(cot[:middle]) <= start


@needs_data
def test_real_cots_keep_citations_and_split_inline_steps(real_cots: list[str]) -> None:
    # "et al." ends a sentence only before a sentence opener ("Hodges et al. Let me see."), never before a year;
    # an inline "Step 3:" starts a sentence (before: run-ons of up to 1,562 characters).
    cut_citations = []
    longest_step_run = 0
    for cot in real_cots:
        sentences = split_sentences(cot)
        for sentence, after in zip(sentences, sentences[1:], strict=False):
            if sentence.rstrip().endswith(" al.") and not after.lstrip().startswith("Let"):
                cut_citations.append(sentence[-40:] + after[:20])
        for sentence in sentences:
            if re.search(r"\S\s+(?:#+ |\*\*)?Step \d+:", sentence.strip()):
                longest_step_run = max(longest_step_run, len(sentence))
    assert cut_citations == []
    assert longest_step_run < 500
