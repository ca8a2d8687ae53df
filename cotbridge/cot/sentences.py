"""Sentence splitting for chains of thought (CoTs) written by reasoning models.

The ensemble condition (D) builds a CoT one sentence at a time, so it needs real sentences: the reference code used
15-token fragments joined with a space, which split words ("heartbe ats") and numbers. This splitter never cuts inside
a word, a decimal number or a LaTeX fragment, and it never adds or drops a character:
``"".join(split_sentences(text)) == text`` for every string.

Whitespace convention: the whitespace (spaces, newlines, blank lines) between two sentences belongs to the START of
the following sentence. A sentence appended to a CoT therefore carries its own separator, and the text before a
boundary never ends with the separator. Leading whitespace of the text stays with the first sentence and trailing
whitespace of the text stays with the last one (no sentence follows it).

Rules, in the order they are applied to each whitespace run between two pieces of text:

1. Nothing is split inside math or inline code: ``\\( .. \\)``, ``\\[ .. \\]``, ``$$ .. $$``, ``$..$`` (pandoc
   rule: no space just inside the dollars, no digit after the closing one), ``\\begin{env} .. \\end{env}``,
   inline code in backticks and a LaTeX command with its brace arguments (``\\frac{a}{b}``, ``\\text{days.}``).
   A protected span never crosses a blank line, never contains a second opener of its kind and is bounded in length
   (``\\(`` 400 characters, ``\\[`` and ``$$`` 1000), so a stray delimiter protects nothing. Fenced code blocks
   are split like text (in CoTs they mostly hold the model's JSON answer draft, whose strings are prose).
2. A blank line always ends a sentence.
3. A single newline ends a sentence when the next line starts a block (list item ``- * + •``, ``1.``, ``2)``,
   ``a)``, ``Step 3``, heading ``#``, quote ``>``, table ``|``, ``**bold**``, display math, code fence, ``<tag>``),
   or when the line ends with a Markdown hard break (two spaces before the newline; the answer-filtered CoTs of
   the paper separate their sentences this way).
4. Sentence punctuation (``.``, ``!``, ``?``, an ellipsis ``...``/``…``), possibly followed by closing quotes,
   brackets or Markdown emphasis, ends a sentence when a newline follows, or a space and then an uppercase letter,
   a digit (not after an ellipsis) or a sentence-opening symbol (``\\``, ``$``, ``#``, ``<``). Exceptions for a
   single period: titles (``Dr. Smith``) and reference abbreviations (``e.g. Aspirin``, ``vs. Placebo``,
   ``approx. 5``, ``No. 5``) never end a sentence; initials and dotted acronyms (``John F. Kennedy``, ``U.S. Army``,
   ``et al.``) end one only when the next word is a usual sentence opener (``The``, ``So``, ``Wait`` ...), and
   ``et al.`` never before a year (``Hodges et al. 1971``, ``Smith et al. (2004)``); a list
   marker is not an end, at the start of a sentence (``1.``, ``Step 2.``, ``b.``, ``**Step 3.**``) or after a colon
   (``criteria: 1. Age``, but not ``Total: 1. But wait``); a lowercase word after the period continues the sentence
   (``etc. and``, ``5 mg. of``, ``M. pneumoniae``) unless the period follows a computed number or the word is a
   formula (reasoning models write ``ln(73)=4.29. times 2`` and ``RR=0.41 s. sqrt(RR)``). After ``?``, ``!`` or an
   ellipsis, a lowercase word continues the sentence (``stroke? none``, ``is... let me see``). ``。！？`` always end a
   sentence, even without a following space. Periods not followed by whitespace (decimals ``0.6643``, ``mg/dL.The``)
   are never candidates.
5. Inline enumerations: ``criteria: 1. Age <45 2. No prior PE 3. ...`` is split before ``2.`` and ``3.`` (the
   previous number must appear as a marker earlier in the same sentence, and a number right after an operator is
   an operand: ``(S + 2D) / 3. 3. Plug in``). An inline step (``Step 3:``, ``Step 3.``, ``**Step 3:``,
   ``### Step 3:``) starts a sentence wherever it stands, unless an operator or a word that refers to it comes
   just before (``as in Step 2:``, ``see Step 4.``).
6. Any other single newline ends a sentence, unless the line looks wrapped: the next line starts with a lowercase
   letter, or the line ends with a comma, an operator, an opening bracket or a function word (``of``, ``the``,
   ``and`` ...). A line ending with ``:`` or with a display-math / table closer always ends a sentence.

Every decision looks at a bounded window around one whitespace run, so the cost is linear in the text length
(about 0.06 s per MB of CoT text).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache

__all__ = ["last_complete_sentence_end", "sentence_spans", "split_sentences"]

# --- character classes -------------------------------------------------------------------------------------------

_TERMINALS = ".!?…。！？"
_CJK_TERMINALS = "。！？"
# Characters that may close a sentence after its punctuation: quotes, brackets, Markdown emphasis / code.
_CLOSERS = "\"'”’»)]}*_`」』）"
# Characters skipped at the start of the next sentence before looking at its first letter.
_OPENERS = "\"'“‘«([{*_"
# Characters that start a new sentence although they are neither letters nor digits.
_STARTERS_SYMBOLS = "\\$#<•"
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# A line ending with one of these continues on the next line (wrapped text, a formula cut at an operator).
_CONTINUATION_CHARS = ",;([{=+-–—&/\\×÷"
_OPERATORS = "=+-–*/×÷^<>≤≥≈~("


def _words(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Never end a sentence: titles before a name.
_TITLES = _words("dr mr mrs ms mx prof rev hon st mt gen col lt sgt capt cpt fr pres gov sen rep supt messrs mme mlle")
# Never end a sentence: Latin and reference abbreviations that introduce something.
_NONFINAL = _words("e.g eg i.e ie vs cf viz fig figs eq eqs approx incl esp resp vol pp")
# Do not end a sentence before a number: "No. 5", "p. 12", "ref. 3".
# "et al." before a number is a citation's year: "Hodges et al. 1971", "Smith et al. (2004)".
_DIGIT_NONFINAL = _words("no nos p ref refs ch sec sect art para tab al")
# May end a sentence, but usually do not: split after them only before a usual sentence opener.
_AMBIGUOUS = _words("al jr sr inc ltd co corp bros a.m p.m")
# May end a sentence; a following lowercase word after a newline continues it ("etc.\nand").
_ABBREVIATIONS = (
    _TITLES
    | _NONFINAL
    | _DIGIT_NONFINAL
    | _AMBIGUOUS
    | _words(
        "etc mg kg g mcg ug ml dl l mmol mol meq min mins hr hrs h sec secs yr yrs wk wks mo mos approx est avg max "
        "dept univ"
    )
)
# Words that usually open a sentence: after an initial or acronym, they signal the sentence did end there.
_SENTENCE_OPENERS = _words(
    """The This That These Those There Then Thus Therefore Hence So But And Or If In On At For From With When While
    Where Which What Who Why How It Its I I'm I'll I've We He She They You My Our Let Let's Now Next First Second
    Third Finally Also Alternatively Actually Another However Wait Hmm Okay OK Ok Yes No Not Oh Maybe Perhaps Since
    Because Given Using To A An As After Before Both Each All Some Other Otherwise Here Note Looking Compute
    Calculate Check Step Similarly Moreover Furthermore Answer Final Total"""
)
# Openers that begin a new thought rather than a list item ("Total: 1. But wait").
_DISCOURSE_OPENERS = _words(
    "But So Wait Then Hmm Therefore Thus Hence However Now Let Let's Okay OK Alternatively Actually Also Oh"
)
# A line ending with one of these words is wrapped mid-sentence.
_FUNCTION_WORDS = _words(
    """a an the of to in on at by for with from into onto and or but nor as than that which who whose whom is are was
    were be been being has have had this these those its their our my your his her not if per via"""
)

# --- regular expressions -----------------------------------------------------------------------------------------

# Candidate gaps, found by a scan whose every alternative starts with a character class (so the regex engine skips
# ordinary text quickly): punctuation or a closer followed by whitespace (the gap starts after that character), a
# line break (the gap extends back over the spaces before it), an inline list marker "2." / "2)" (the gap is the
# whitespace before it), or CJK sentence punctuation followed directly by text (a zero-width gap after it).
_SCAN_RE = re.compile(
    r"[.!?…。！？\"'”’»)\]}*_`」』）]\s+"
    rf"|[{_LINE_BREAKS}]\s*"
    r"|\d{1,2}(?=[.)]\s)"  # consumes only the digits: the punctuation after them is a candidate of its own
    r"|(?:#{1,6}[ \t]+|\*\*)?(?:Step|STEP)[ \t]+\d{1,2}[:.)]"  # an inline step: the gap is the whitespace before it
    r"|[。！？][」』”’）)\]]*+(?=\S)"  # possessive: never split between the punctuation and its closers
)

# Spans where no split may happen (math, code, LaTeX commands with their arguments). Delimited spans are paired
# with bisect instead of a lazy regex so that unclosed delimiters cost O(log n) each, not a scan of the text.
# (opener, closer, longest span): longer "spans" are almost always a stray delimiter pairing with a far one.
_DELIMITED: tuple[tuple[str, str, int], ...] = (("\\[", "\\]", 1000), ("\\(", "\\)", 400), ("$$", "$$", 1000))
_BEGIN_RE = re.compile(r"\\begin\{([A-Za-z*]{1,20})\}")
_END_RE = re.compile(r"\\end\{([A-Za-z*]{1,20})\}")
_ENV_LIMIT = 3000
_BLANK_LINE_RE = re.compile(r"\n[ \t\r]*\n")
# Inline spans that a regex finds in linear time: `$..$` (pandoc rule: no space just inside the dollars, no digit
# after the closing one), inline code, and a LaTeX command with its (up to 3 levels nested) brace arguments.
_INLINE_PROTECT_RE = re.compile(
    r"\$(?=[^\s$])[^$\n]{0,500}?(?<=[^\s\\])\$(?!\d)"
    r"|`[^`\n]{1,300}`"
    r"|\\[A-Za-z]+\*?(?:\s*\{(?:[^{}\n]|\{(?:[^{}\n]|\{[^{}\n]*\})*\})*\})+"
)

# The start of a line that opens a new block (list item, step, heading, table, display math, code, tag).
_BLOCK_START_RE = re.compile(
    r"(?:[-+*•‣◦▪·–—](?=\s)"
    r"|\(?\d{1,3}[.)](?=\s|$)"
    r"|\(?[A-Za-z][.)](?=\s)"
    r"|\(?[ivxIVX]{1,5}[.)](?=\s)"
    r"|#{1,6}(?=\s)"
    r"|[-=_*]{3,}"
    r"|[>|]"
    r"|\\\[|\\begin\{|\$\$|```|~~~"
    r"|</?[A-Za-z]"
    r"|\*\*|__"
    r"|(?:Step|STEP|Part|PART|Phase|Stage|Case|Question|Q)\s*\d+)"
)

# A sentence that is only a list marker so far: "1", "  Step 2", "(b", "**3", "iv", "1.2".
_MARKER_ONLY_RE = re.compile(
    r"\s*[*_#>]*\s*(?:(?:step|part|phase|stage|case|question|item|q|no)\s*)?"
    r"[(\[]?(?:\d{1,3}(?:\.\d{1,3})*|[a-z]|[ivx]{1,5})[)\]]?[*_]*",
    re.IGNORECASE,
)
_MARKER_WORD_RE = re.compile(r"(?:step|part|phase|stage|case|question|item|no)\Z", re.IGNORECASE)
_INLINE_MARKER_RE = re.compile(r"(\d{1,2})[.)]\s")
_INLINE_STEP_RE = re.compile(r"(?:#{1,6}[ \t]+|\*\*)?(?:Step|STEP)[ \t]+\d{1,2}[:.)]")
# Words after which "Step 3:" is a reference, not a new step: "as in Step 2: ...", "see Step 4."
_STEP_REFERENCE_WORDS = _FUNCTION_WORDS | _words("see per after before under until like then")
_NEXT_WORD_RE = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
# A lowercase token that is a formula: "sqrt(32)", "ln(1291)", "e^-0.87", "f(x)=".
_FORMULA_START_RE = re.compile(r"[a-z][A-Za-z0-9_]*(?:\(|\^|=)")
_LAST_WORD_RE = re.compile(r"[A-Za-z]+\Z")
_INITIAL_RE = re.compile(r"[A-Z]")
_PREVIOUS_WORD_RE = re.compile(r"\S+\Z")
_DOTTED_RE = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")
_LINE_BREAK_RE = re.compile(rf"\r\n|[{_LINE_BREAKS}]")

# How far back a token or a previous inline marker is looked for (keeps every decision O(1)).
_TOKEN_WINDOW = 64
_MARKER_WINDOW = 2000


@lru_cache(maxsize=128)
def _previous_marker_re(number: int) -> re.Pattern[str]:
    """Pattern for an inline list marker `number.` or `number)` preceded by whitespace, ':' or '('."""
    return re.compile(rf"(?<![^\s:(]){number}[.)]\s")


# --- helpers -----------------------------------------------------------------------------------------------------


def _protected_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, non-overlapping [start, end) spans inside which no boundary may fall."""
    if "\\" not in text and "$" not in text and "`" not in text:
        return []
    blanks = [m.start() for m in _BLANK_LINE_RE.finditer(text)]

    def crosses_blank_line(start: int, end: int) -> bool:
        i = bisect_left(blanks, start)
        return i < len(blanks) and blanks[i] < end

    candidates: list[tuple[int, int]] = []
    for opener, closer, limit in _DELIMITED:
        if opener not in text or closer not in text:
            continue
        openers = [m.start() for m in re.finditer(re.escape(opener), text)]
        closers = openers if opener == closer else [m.start() for m in re.finditer(re.escape(closer), text)]
        width = len(opener)  # == len(closer)
        for k, start in enumerate(openers):
            i = bisect_left(closers, start + width)
            if i == len(closers):
                break
            end = closers[i] + width
            if opener != closer and k + 1 < len(openers) and openers[k + 1] < closers[i]:
                continue  # another opener comes first: this one is unclosed
            if end - start <= limit and not crosses_blank_line(start, end):
                candidates.append((start, end))
    if "\\begin{" in text:
        ends: dict[str, list[tuple[int, int]]] = {}
        for m in _END_RE.finditer(text):
            ends.setdefault(m.group(1), []).append(m.span())
        for m in _BEGIN_RE.finditer(text):
            spans = ends.get(m.group(1), [])
            i = bisect_left(spans, (m.end(), -1))
            if i < len(spans):
                start, end = m.start(), spans[i][1]
                if end - start <= _ENV_LIMIT and not crosses_blank_line(start, end):
                    candidates.append((start, end))
    candidates.extend(m.span() for m in _INLINE_PROTECT_RE.finditer(text))
    # Leftmost first, longest first at the same start; a span starting inside an accepted one is dropped.
    candidates.sort(key=lambda span: (span[0], -span[1]))
    accepted: list[tuple[int, int]] = []
    last_end = 0
    for start, end in candidates:
        if start >= last_end:
            accepted.append((start, end))
            last_end = end
    return accepted


def _first_char_class(text: str, q: int) -> tuple[str, int]:
    """Classify what starts at `q` (after skipping up to 4 opening quotes/brackets): upper, lower, digit, start, other.

    Returns the class and the index of the classified character.
    """
    n = len(text)
    i = q
    while i < n and i - q < 4 and text[i] in _OPENERS:
        i += 1
    if i >= n:
        return "other", i
    c = text[i]
    if c.islower():
        return "lower", i
    if c.isupper() or c.isalpha():  # letters without case (CJK ...) start sentences like uppercase ones
        return "upper", i
    if c.isdigit():
        return "digit", i
    if c in _STARTERS_SYMBOLS:
        return "start", i
    return "other", i


def _next_word(text: str, i: int) -> str:
    m = _NEXT_WORD_RE.match(text, i)
    return m.group(0) if m else ""


def _line_break_count(gap: str) -> int:
    return len(_LINE_BREAK_RE.findall(gap))


def _is_wrapped(text: str, p: int, q: int) -> bool:
    """Whether the line ending at `p` (exclusive) continues on the line starting at `q`: a soft-wrapped sentence."""
    if q < len(text) and text[q].islower():
        return True
    c = text[p - 1]
    if c in _CONTINUATION_CHARS:
        return True
    m = _LAST_WORD_RE.search(text, max(0, p - 16), p)
    return bool(m and m.group(0).lower() in _FUNCTION_WORDS)


def _line_closes_block(text: str, p: int) -> bool:
    """Whether the line ending at `p` ends with ':' or a display-math / code / table closer."""
    c = text[p - 1]
    if c in ":|":
        return True
    tail = text[max(0, p - 16) : p]
    return tail.endswith(("\\]", "$$", "```", "~~~")) or (c == "}" and "\\end{" in tail)


class _Terminal:
    """Sentence-ending punctuation found just before a gap."""

    __slots__ = ("closed", "kind", "start", "tok", "tok_start")

    def __init__(self, kind: str, start: int, closed: bool, tok: str, tok_start: int) -> None:
        self.kind = kind  # ".", "?" (also "!"), "..." (ellipsis) or "cjk"
        self.start = start  # index of the first punctuation character
        self.closed = closed  # followed by closing quotes / brackets before the gap
        self.tok = tok  # the word before the punctuation, openers stripped (original case)
        self.tok_start = tok_start


def _terminal_before(text: str, p: int) -> _Terminal | None:
    """The sentence-ending punctuation (plus closers) ending at `p`, or None."""
    lo = max(0, p - _TOKEN_WINDOW)
    i = p
    while i > lo and p - i < 4 and text[i - 1] in _CLOSERS:
        i -= 1
    if i <= lo or text[i - 1] not in _TERMINALS:
        return None
    j = i
    while j > lo and text[j - 1] in _TERMINALS:
        j -= 1
    run = text[j:i]
    if any(c in _CJK_TERMINALS for c in run):
        kind = "cjk"
    elif "?" in run or "!" in run:
        kind = "?"
    elif len(run) > 1 or "…" in run:
        kind = "..."
    else:
        kind = "."
    k = j
    while k > lo and not text[k - 1].isspace():
        k -= 1
    while k < j and text[k] in _OPENERS:
        k += 1
    return _Terminal(kind, j, i < p, text[k:j], k)


def _is_marker(text: str, sent_start: int, term: _Terminal, first: int) -> bool:
    """Whether the period at `term.start` closes a list marker ("1.", "Step 2.", "criteria: 1.") not a sentence.

    `first` is the index of the first letter or digit after the gap.
    """
    j = term.start
    if j - sent_start <= 40 and _MARKER_ONLY_RE.fullmatch(text, sent_start, j):
        return True
    tok = term.tok
    if not tok.isdigit() or len(tok) > 3:
        return False
    before = text[max(0, term.tok_start - 16) : term.tok_start].rstrip()
    if tok == "1" and before.endswith(":"):
        # "criteria: 1. Age"; but "Total score: 1. But wait" is a value followed by a new sentence.
        return _next_word(text, first) not in _DISCOURSE_OPENERS
    return bool(_MARKER_WORD_RE.search(before))


def _period_decision(text: str, term: _Terminal, sent_start: int, newline: bool, cls: str, first: int) -> bool:
    """Whether a single '.' (with the word `term.tok` before it) ends the sentence."""
    tok = term.tok.lower()
    if newline:
        # A newline after a period ends the sentence unless the period belongs to a title or a reference
        # abbreviation, or to an abbreviation continued in lowercase ("etc.\nand").
        if term.closed:
            return True
        if _is_title(term.tok) or tok in _NONFINAL:
            return False
        return not (cls == "lower" and tok in _ABBREVIATIONS)
    if _is_marker(text, sent_start, term, first):
        return False  # "1. Compute", "**Step 2.** Add"
    if term.closed:
        # 'He said "stop." Then': the quote or bracket closed whatever the period belonged to.
        return cls in ("upper", "digit", "start")
    if _is_title(term.tok):
        return False
    if cls == "lower":
        # Lowercase after a period continues the sentence ("etc. and", "5 mg. of", "M. pneumoniae"), except after
        # a computed number or before a formula: reasoning models write "ln(73)=4.29. times -1.2" and
        # "RR=0.41 s. sqrt(RR)=0.64". A bare small integer before the period is a list marker ("3. acute event").
        if _FORMULA_START_RE.match(text, first):
            return tok not in _NONFINAL
        return text[term.start - 1].isdigit() and not (tok.isdigit() and len(tok) <= 2)
    if cls == "digit":
        return tok not in _NONFINAL and tok not in _DIGIT_NONFINAL
    if cls == "other":
        return False
    # Uppercase letter or a sentence-starting symbol.
    if tok in _NONFINAL:
        return False
    if tok in _AMBIGUOUS or _DOTTED_RE.fullmatch(term.tok):
        return _next_word(text, first) in _SENTENCE_OPENERS
    if _INITIAL_RE.fullmatch(term.tok) and _follows_capitalized_word(text, term.tok_start):
        return _next_word(text, first) in _SENTENCE_OPENERS
    return True


def _is_title(tok: str) -> bool:
    """A title before a name, written "Dr" or "Ms": "ms" is a unit (milliseconds), "MME" an acronym."""
    return tok == tok.capitalize() and tok[:1].isupper() and tok.lower() in _TITLES


def _follows_capitalized_word(text: str, i: int) -> bool:
    """Whether the word before index `i` is capitalized ("John F. Kennedy") or an initial ("J. R. Smith")."""
    k = i
    while k > 0 and text[k - 1] in " \t":
        k -= 1
    if k == i:
        return False  # no space before the token (it follows an opening bracket or quote)
    m = _PREVIOUS_WORD_RE.search(text, max(0, k - 32), k)
    if m is None:
        return False
    word = m.group(0)
    return word[0].isupper() and (word[-1] not in _TERMINALS or _INITIAL_RE.fullmatch(word[:-1]) is not None)


def _gap_is_boundary(text: str, p: int, q: int, sent_start: int) -> bool:
    """Decide whether the whitespace run text[p:q] starts a new sentence (the boundary is at `p`)."""
    gap = text[p:q]
    breaks = _line_break_count(gap)
    if breaks >= 2:
        return True
    if breaks == 1:
        if _BLOCK_START_RE.match(text, q):
            return True
        first_break = _LINE_BREAK_RE.search(gap)
        if first_break is not None and first_break.start() >= 2:  # Markdown hard break: "  \n"
            return True

    term = _terminal_before(text, p)
    cls, first = _first_char_class(text, q)
    if term is not None:
        if term.kind == "cjk":
            return True
        if term.kind == ".":
            return _period_decision(text, term, sent_start, breaks == 1, cls, first)
        if breaks == 1:
            return True
        if term.kind == "?":
            return cls in ("upper", "digit", "start")
        return cls in ("upper", "start")  # ellipsis: "is... 0.91" and "is... let me" go on

    if breaks == 0:
        # Inline enumeration: split before "k." when "k-1." opened an item earlier in this sentence. After an
        # operator the number is an operand ("(S + 2 x D) / 3. 3. Plug in", "Score = 4. Since").
        if _INLINE_STEP_RE.match(text, q):
            # "... (A) Step 3: Evaluate", "... \\] Step 4: Add": a new step, unless the text refers to one.
            word = _LAST_WORD_RE.search(text, max(0, p - 16), p)
            operand = text[p - 1] in _OPERATORS + "," and not text.endswith("**", 0, p)  # "**" closes bold
            return not operand and not (word and word.group(0).lower() in _STEP_REFERENCE_WORDS)
        m = _INLINE_MARKER_RE.match(text, q)
        if m is not None and text[p - 1] not in _OPERATORS:
            k = int(m.group(1))
            lo = max(sent_start, p - _MARKER_WINDOW)
            return k >= 2 and _previous_marker_re(k - 1).search(text, lo, p) is not None
        return False

    if _line_closes_block(text, p):
        return True
    return not _is_wrapped(text, p, q)


# --- public API --------------------------------------------------------------------------------------------------


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return the [start, end) character spans of the sentences of `text`.

    The spans are contiguous and cover the whole text: the first starts at 0, each starts where the previous one
    ends, the last ends at ``len(text)``. Whitespace between two sentences is at the start of the second span (see
    the module docstring for the rules). Empty text gives ``[]``; whitespace-only text gives one span.
    """
    n = len(text)
    if n == 0:
        return []
    protected = _protected_spans(text)
    pi = 0
    boundaries: list[int] = []
    sent_start = 0
    last_q = 0
    for m in _SCAN_RE.finditer(text):
        s, e = m.span()
        c = text[s]
        marker = c.isdigit() or (c in "#*S" and _INLINE_STEP_RE.match(text, s) is not None)
        if marker:  # inline marker or step: the gap is the whitespace run before it
            p = q = s
        elif c.isspace():  # line break: the gap starts with the spaces before it
            p, q = s, e
        elif text[e - 1].isspace():  # punctuation or closer, then whitespace
            p, q = s + 1, e
        else:  # CJK punctuation glued to the next sentence
            p = q = e
        if p == q and marker:
            while p > 0 and text[p - 1].isspace():
                p -= 1
            if p == q:
                continue  # "12." : not a marker token
        elif c.isspace():
            while p > 0 and text[p - 1].isspace():
                p -= 1
        if q <= last_q or p == 0 or q >= n:
            continue  # already seen; leading / trailing whitespace stays with the first / last sentence
        last_q = q
        while pi < len(protected) and protected[pi][1] <= p:
            pi += 1
        if pi < len(protected) and protected[pi][0] < p:
            continue  # inside math or code
        if p == q or _gap_is_boundary(text, p, q, sent_start):
            boundaries.append(p)
            sent_start = p
    starts = [0, *boundaries]
    ends = [*boundaries, n]
    return list(zip(starts, ends, strict=True))


def split_sentences(text: str) -> list[str]:
    """Split a chain of thought into sentences, losing and adding nothing.

    ``"".join(split_sentences(text)) == text`` for every string. Each sentence keeps its own leading whitespace:
    the spaces or newlines separating it from the previous sentence are at its START, so a sentence appended to a
    CoT carries its own separator. Leading whitespace of the text stays with the first sentence, trailing whitespace
    with the last. Decimals, abbreviations, initials, list markers, formulas, ellipses, quotes, and LaTeX fragments
    stay whole; blank lines, new list items / steps / headings, and newlines after sentence punctuation end a
    sentence (the module docstring lists the rules). ``""`` gives ``[]``; whitespace-only text gives ``[text]``.
    """
    return [text[s:e] for s, e in sentence_spans(text)]


def last_complete_sentence_end(text: str) -> int:
    """Index where the last COMPLETE sentence of `text` ends; ``text[i:]`` is an unfinished tail (maybe empty).

    Use it to cut a generation that a token cap stopped mid-sentence back to whole sentences: keep ``text[:i]``.
    Every sentence followed by a boundary is complete. The last sentence is complete when, ignoring trailing
    whitespace, it ends with sentence punctuation (``. ! ? ...``, possibly followed by closing quotes or brackets),
    or when it is followed by a newline that is not a wrapped line (a finished line, e.g. a list item or a formula).
    It is incomplete when it ends with a title or reference abbreviation (``Dr.``, ``e.g.``), when it is only a list
    marker (``2.``), or when it leaves math, a code fence or a brace group open. The returned index excludes
    trailing whitespace: whitespace belongs to the next sentence. Note that a cut right after the period of a
    decimal ("22." of "22.86") cannot be told from a finished sentence; callers that know the generation hit the
    token cap may prefer to drop the last sentence whenever it lacks a following newline.
    """
    spans = sentence_spans(text)
    if not spans:
        return 0
    start, end = spans[-1]
    content_end = len(text[start:end].rstrip()) + start
    fallback = start if len(spans) > 1 else 0
    if content_end <= start or text[start:content_end].isspace():
        return fallback
    sentence = text[start:content_end]
    if _leaves_something_open(sentence):
        return fallback
    term = _terminal_before(text, content_end)
    if term is not None:
        if term.kind == "." and not term.closed:
            tok = term.tok.lower()
            if _is_title(term.tok) or tok in _NONFINAL:
                return fallback
            if term.start - start <= 40 and _MARKER_ONLY_RE.fullmatch(text, start, term.start):
                return fallback
        return content_end
    trailing = text[content_end:end]
    if _LINE_BREAK_RE.search(trailing) and (
        _line_closes_block(text, content_end) or not _is_wrapped(text, content_end, content_end)
    ):
        return content_end
    return fallback


def _leaves_something_open(sentence: str) -> bool:
    """Whether the sentence opens math, a code fence or a brace group that it does not close (a cut-off formula)."""
    return (
        sentence.count("\\[") > sentence.count("\\]")
        or sentence.count("\\(") > sentence.count("\\)")
        or sentence.count("$$") % 2 == 1
        or sentence.count("```") % 2 == 1
        or sentence.count("{") > sentence.count("}")
    )
