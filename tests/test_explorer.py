"""The HTML explorer: its data from a real results DB, and the page itself in a real headless Chromium.

The small study is written the way a run writes it: CoTs are `Explanation`s made answer-free by the rule filter
(`remove_answer_by_rule`) and stored through `StudyCot.row`, the ensemble CoT carries a real `EnsembleTrace`.
Browser tests drive Debian's chromium over the DevTools protocol (tests/browser.py); they skip when it is absent,
except under COTBRIDGE_REQUIRE_BROWSER=1 (CI), where a missing browser fails. Screenshots go to
artifacts/screenshots/ (printed; `pytest -rP` shows the paths).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cotbridge.analysis import explorer
from cotbridge.analysis.explorer import explorer_data, explorer_page
from cotbridge.analysis.report import build_report
from cotbridge.cot.answer_removal import remove_answer_by_rule
from cotbridge.cot.ensemble import Candidate, EnsembleEnd, EnsembleTrace, Proposer, Step, StepChoice
from cotbridge.cot.sentences import split_sentences
from cotbridge.records import Explanation, Score, Variant
from cotbridge.study import parse_study, run_study
from cotbridge.study.explanations import CotKind, StudyCot
from cotbridge.study.results import ResultsDB, TrialRow
from tests.browser import Page, chromium, find_chromium
from tests.conftest import REPO, SHARED_DATA
from tests.test_cli import run

SCREENSHOTS = REPO / "artifacts" / "screenshots"
GENEX = SHARED_DATA / "genex-medcalc"
# The paper's release must open within this many seconds (measured: under 1 s on 2 shared cores).
GENEX_OPEN_S = 10.0

# problem -> (question, gold); model -> problem -> (CoT, answer)
QUESTIONS = {"p1": ("What is 17 + 25?", "42"), "p2": ("What is 6 * 7 + 1?", "43"), "p3": ("What is 9 * 9?", "81")}
COTS = {
    "alpha": {
        "p1": ("Add the tens: 10 + 20 = 30. Add the ones: 7 + 5 = 12. So the answer is 42.", "42"),
        "p2": ("Six sevens are 42. One more makes it bigger. The final answer is 43.", "43"),
        "p3": ("Nine nines are a square. The product is 81.", "81"),
    },
    "beta": {
        "p1": ("Start from 17. Adding 25 gives a zebra-free sum. Therefore, the total is 42.", "42"),
        "p2": ("Multiply first, then add. The answer is 44.", "44"),
        "p3": ("A square of nine. I think it is 72.", "72"),
    },
}
# evaluator answers per condition label: problem -> (alpha's, beta's)
ANSWERS: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "empty": {"p1": ("42", "41"), "p2": ("43", "43"), "p3": ("80", None)},
    "transfer": {"p1": ("42", "42"), "p2": ("43", "44"), "p3": ("81", "81")},
    "ensemble": {"p1": ("42", "42"), "p2": ("43", "43"), "p3": ("81", "72")},
}


def _explanation(model: str, pid: str) -> Explanation:
    cot, answer = COTS[model][pid]
    score = Score(answer, answer, answer == QUESTIONS[pid][1])
    return Explanation(pid, model, "think-tags", cot, f"Answer: {answer}", score, 0.0, prompt_text=QUESTIONS[pid][0])


def _ensemble(pid: str) -> tuple[Explanation, str]:
    """An ensemble CoT of two steps, alpha's sentence then beta's, with the candidates each beat."""
    first, second = split_sentences(COTS["alpha"][pid][0])[0], split_sentences(COTS["beta"][pid][0])[-1]
    trace = EnsembleTrace(ended=EnsembleEnd.CHOSEN_CLOSED, closed_by=["beta"])
    steps = [
        [Candidate(first, [Proposer("alpha", 0)], score=-0.25), Candidate("Hmm.", [Proposer("beta", 0)], score=-1.5)],
        [
            Candidate(" Guess 7.", [Proposer("alpha", 0)], score=-2.0),
            Candidate(second, [Proposer("beta", 0)], score=-0.5),
        ],
    ]
    for k, candidates in enumerate(steps):
        chosen = max(range(len(candidates)), key=lambda i: candidates[i].score)
        trace.steps.append(Step(k, candidates, chosen, StepChoice.BEST, 0.1, 2, 0))
    cot = first + second
    answer = COTS["beta"][pid][1]
    score = Score(answer, answer, answer == QUESTIONS[pid][1])
    return Explanation(pid, "mix", "think-tags", cot, f"Answer: {answer}", score, 0.0), json.dumps(trace.as_dict())


def _trial(condition: str, variant: str, evaluator: str, source: str, pid: str, answer: str | None) -> TrialRow:
    correct = None if answer is None else answer == QUESTIONS[pid][1]
    text = f"The answer is {answer}." if answer is not None else "I cannot tell."
    return TrialRow("s", condition, variant, evaluator, source, 0, pid, "prefill", text, answer, answer, correct)


def make_study(path: Path) -> ResultsDB:
    """Two evaluators, three problems; empty, transfer (both variants, from each model) and ensemble trials."""
    db = ResultsDB(path)
    db.save_study("s", {"models": {"alpha": {}, "beta": {}}})
    rows = []
    for model in COTS:
        for pid in QUESTIONS:
            full = _explanation(model, pid)
            rows += [
                StudyCot(Variant.FULL, CotKind.GREEDY, model, full).row("s"),
                StudyCot(Variant.WITHOUT_ANSWER, CotKind.GREEDY, model, remove_answer_by_rule(full)).row("s"),
            ]
    for pid in QUESTIONS:
        made, trace = _ensemble(pid)
        rows.append(StudyCot(Variant.FULL, CotKind.ENSEMBLE, "mix", made).row("s", trace=trace))
        rows.append(StudyCot(Variant.WITHOUT_ANSWER, CotKind.ENSEMBLE, "mix", remove_answer_by_rule(made)).row("s"))
    db.put_explanations(rows)
    trials = []
    for pid in QUESTIONS:
        for i, evaluator in enumerate(COTS):
            trials.append(_trial("empty", "full", evaluator, "", pid, ANSWERS["empty"][pid][i]))
            for variant in Variant:
                trials.append(_trial("ensemble", variant, evaluator, "mix", pid, ANSWERS["ensemble"][pid][i]))
                for source in COTS:
                    trials.append(_trial("transfer", variant, evaluator, source, pid, ANSWERS["transfer"][pid][i]))
    db.put_trials(trials)
    return db


@pytest.fixture
def study(tmp_path: Path) -> Iterator[ResultsDB]:
    db = make_study(tmp_path / "study.db")
    yield db
    db.close()


def decoded(page: str) -> dict[str, Any]:
    """The data inside a page, decoded as the page decodes it."""
    found = re.search(r'<script id="data" type="application/octet-stream">([A-Za-z0-9+/=]+)</script>', page)
    assert found, "the page has no inline data block"
    return json.loads(gzip.decompress(base64.b64decode(found[1])))


# -- the data (no browser) -----------------------------------------------------------------------------------------


def test_page_data_holds_every_row_and_the_reports_numbers(study: ResultsDB) -> None:
    report = build_report(study, metric="strict")
    page = explorer_page(study, report)
    data = decoded(page)
    assert data == json.loads(json.dumps(explorer_data(study, report)))  # what the page carries is the data
    assert data["report"]["conditions"] == json.loads(json.dumps(report.as_json()["conditions"]))
    assert [c["summary"]["name"] for c in data["conditions"]] == [c.name for c in report.conditions]
    assert sum(len(c["trials"]) for c in data["conditions"]) == len(list(study.trials("s")))
    assert len(data["cots"]) == len(list(study.explanations("s"))) == 18
    strings = data["strings"]
    assert len(strings) == len(set(strings))  # each text once
    # Nothing in the page points outside it, and the policy forbids every request.
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)
    assert "default-src 'none'" in page


def test_dropped_sentences_and_ensemble_trace_reach_the_page(study: ResultsDB) -> None:
    data = decoded(explorer_page(study, build_report(study)))
    s = data["strings"]
    by_key = {(s[c[1]], c[2], c[4], data["problems"][c[0]][0]): c for c in data["cots"]}
    without = by_key[("alpha", "greedy", "without_answer", "p1")]
    struck = without[9]["struck"]
    full = s[without[9]["full"]]
    assert full == COTS["alpha"]["p1"][0]
    sentences = [full[start:end] for start, end in zip([0, *struck["ends"]], struck["ends"], strict=False)]
    assert [sentences[i].strip() for i in struck["dropped"]] == ["So the answer is 42."]
    assert s[without[5]] == "Add the tens: 10 + 20 = 30. Add the ones: 7 + 5 = 12."  # what the evaluators got
    steps = by_key[("mix", "ensemble", "full", "p2")][9]["trace"]
    assert [(s[step[0]], step[1], step[2]) for step in steps] == [
        ("Six sevens are 42.", ["alpha"], -0.25),
        (" The answer is 44.", ["beta"], -0.5),
    ]
    assert [s[alt[0]] for alt in steps[1][6]] == [" Guess 7."]  # the candidate it beat
    # Each trial points at the CoT it was given: transfer from beta without answer -> beta's answer-free CoT.
    transfer = next(
        c
        for c in data["conditions"]
        if c["summary"]["name"] == "transfer:beta" and c["summary"]["variant"] == "without_answer"
    )
    given = {data["cots"][t[6]][1] for t in transfer["trials"]}
    assert {s[g] for g in given} == {"beta"}
    assert data["problems"][0] == ["p1", s.index("What is 17 + 25?")]


def test_agreement_per_problem_follows_the_metric(study: ResultsDB) -> None:
    for metric, expected in (("strict", {"p1": 0, "p2": 1, "p3": -1}), ("paper", {"p1": 0, "p2": 1, "p3": 0})):
        data = decoded(explorer_page(study, build_report(study, metric=metric)))  # type: ignore[arg-type]
        empty = next(c for c in data["conditions"] if c["summary"]["name"] == "empty")
        assert {data["problems"][int(p)][0]: a for p, a in empty["agreement"].items()} == expected, metric


def test_a_very_large_study_leaves_answer_texts_out(study: ResultsDB, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explorer, "MAX_ANSWER_TEXTS", 10)
    data = explorer_data(study, build_report(study))
    trials = [t for c in data["conditions"] for t in c["trials"]]
    assert data["texts_left_out"] == len(trials) == 42
    assert all(t[4] is None for t in trials)
    assert sum(t[2] is not None for t in trials) == sum(t.answer is not None for t in study.trials("s")) == 41
    assert "The answer is 42." not in data["strings"]


def test_cli_writes_the_explorer(study: ResultsDB, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = run("report", study.path, "--format", "html", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "cotbridge explorer" in page and decoded(page)["study"] == "s"


# -- in the browser ------------------------------------------------------------------------------------------------


def _browser() -> str:
    found = find_chromium()
    if found is None:
        why = "no chromium at /usr/bin/chromium (apt-get install chromium) and COTBRIDGE_CHROMIUM is not set"
        if os.environ.get("COTBRIDGE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COTBRIDGE_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Page]:
    async with chromium(_browser()) as page:
        yield page


async def shoot(page: Page, name: str) -> None:
    path = await page.screenshot(SCREENSHOTS / f"{name}.png")
    print(f"screenshot: {path}")


async def open_page(page: Page, html: str, path: Path) -> float:
    """Writes and opens the page; seconds until it has decoded its data and drawn the overview."""
    path.write_text(html, encoding="utf-8")
    started = time.perf_counter()
    await page.open(path.as_uri())
    await page.wait_for("document.body.dataset.ready === '1'", 60)
    return time.perf_counter() - started


def _clean(page: Page) -> None:
    assert page.events.errors == []
    assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in page.events.requests), (
        page.events.requests
    )


async def _below_chromiums_navigation_limit(recent: deque[float], navigations: int) -> None:
    """Waits until `navigations` more keep a walk through the page under Chromium's limit on a frame's navigations
    (200 in any 10 s, each hash change and `history.back()` counted; past it Chromium ignores them and logs
    "Throttling navigation"): a test clicks faster than any reader. `recent`: the times of the walk's navigations."""
    while len(recent) + navigations > 150:
        if (wait := recent[0] + 10.0 - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        recent.popleft()
    now = time.monotonic()
    recent.extend([now] * navigations)


def _view(name: str) -> str:
    return f"document.getElementById('app').dataset.view === {name!r}"


def _count(selector: str) -> str:
    return f"document.querySelectorAll({selector!r}).length"


@pytest.mark.browser
async def test_page_loads_cleanly_and_draws_its_charts(browser: Page, study: ResultsDB, tmp_path: Path) -> None:
    report = build_report(study)
    await open_page(browser, explorer_page(study, report), tmp_path / "r.html")
    drawn = [c for c in report.conditions if c.pairs]
    assert await browser.js(_count("#chart-consistency .point circle")) == len(drawn)
    assert await browser.js(_count("#chart-consistency .point line.ci")) == len(drawn)
    grid = report.matrix["without_answer"]
    assert await browser.js(_count("#chart-matrix-without_answer .cell rect")) == len(grid["sources"]) * len(
        grid["targets"]
    )
    evaluators = {e for per in report.accuracy.values() for e in per}
    assert await browser.js(_count("#chart-accuracy .cell rect")) == len(report.accuracy) * len(evaluators)
    assert await browser.js(_count("#conditions tbody tr")) == len(report.conditions)
    metric = await browser.js("document.querySelector('.metric').textContent")
    assert "paper metric" in metric and "identical or both are correct" in metric
    await shoot(browser, "explorer-small-overview")
    _clean(browser)


@pytest.mark.browser
async def test_condition_to_problem_to_cot(browser: Page, study: ResultsDB, tmp_path: Path) -> None:
    report = build_report(study)
    await open_page(browser, explorer_page(study, report), tmp_path / "r.html")
    position = next(
        i for i, c in enumerate(report.conditions) if (c.name, c.variant) == ("transfer:alpha", "without_answer")
    )
    await browser.click(f'#conditions tr[data-condition="{position}"]')
    await browser.wait_for(_view("c"))
    assert await browser.js(_count("#problems tbody tr")) == 3
    accuracy = await browser.js("document.getElementById('condition-accuracy').textContent")
    assert "alpha 1.00" in accuracy and "beta 0.67" in accuracy
    await shoot(browser, "explorer-small-condition")
    await browser.click('#problems tr[data-problem="0"]')
    await browser.wait_for(_view("p"))
    struck = await browser.js(
        "[...document.querySelectorAll('.cot-card[open] del.dropped')].map(d => d.textContent.trim())"
    )
    assert struck == ["So the answer is 42."]
    assert "What is 17 + 25?" in await browser.js("document.querySelector('.question-text').textContent")
    # Every answer to the problem, conditions by evaluators; a click on one shows the evaluator's text.
    assert await browser.js(_count("#answers tbody tr")) == len(report.conditions)
    await browser.click("#answers tbody tr:nth-child(1) td.answer:nth-child(3)")  # empty, beta
    assert "The answer is 41." in await browser.js("document.getElementById('answer-panel').textContent")
    await shoot(browser, "explorer-small-problem-struck")
    # An ensemble CoT: each sentence marked with its generator and score; a click shows the candidate it beat.
    position = next(i for i, c in enumerate(report.conditions) if (c.name, c.variant) == ("ensemble:mix", "full"))
    await browser.js(f"location.hash = '#p/1/c/{position}'")
    await browser.wait_for(_count(".cot-card[open] .sent"))
    tags = await browser.js("[...document.querySelectorAll('.cot-card[open] .sent sup')].map(t => t.textContent)")
    assert tags == ["alpha -0.25", "beta -0.50"]
    shown = "[...document.querySelectorAll('.alternatives')].filter(a => a.offsetHeight > 0).map(a => a.textContent)"
    assert await browser.js(shown) == []
    await browser.click(".cot-card[open] .sent:nth-of-type(2)")
    (alternatives,) = await browser.js(shown)
    assert "Guess 7." in alternatives and "step 2: 2 candidate(s)" in alternatives
    await shoot(browser, "explorer-small-problem-ensemble")
    _clean(browser)


@pytest.mark.browser
async def test_search_and_filters_narrow_the_lists(browser: Page, study: ResultsDB, tmp_path: Path) -> None:
    report = build_report(study, metric="strict")
    await open_page(browser, explorer_page(study, report), tmp_path / "r.html")
    await browser.type("#search", "zebra")
    await browser.wait_for(_view("search"))
    await browser.wait_for(_count("#hits li") + " === 2")  # beta's CoT of p1, full and without answer
    assert "zebra" in await browser.js("document.querySelector('#hits mark').textContent")
    await shoot(browser, "explorer-small-search")
    await browser.click("#hits li")
    await browser.wait_for(_view("p"))
    # In a condition's problems the search filters the rows, as do the agreement and evaluator filters.
    await browser.js("location.hash = '#c/0'")  # empty: p1 disagrees, p2 agrees, p3 has an invalid answer
    await browser.wait_for(_view("c"))
    assert await browser.js(_count("#problems tbody tr")) == 0  # no CoT in the empty condition mentions zebra
    await browser.set_value("#search", "", "input")
    await browser.wait_for(_count("#problems tbody tr") + " === 3")
    await browser.set_value("#filter-agreement", "0", "change")
    assert await browser.js(
        "[...document.querySelectorAll('#problems tbody tr td:first-child')].map(t => t.textContent)"
    ) == ["p1"]
    await browser.set_value("#filter-model", "beta", "change")
    assert await browser.js(_count("#problems thead th")) == 4  # problem, question, beta, agreement
    _clean(browser)


REAL_STUDY = """
[study]
name = "real"
dataset = "builtin:arithmetic"
sample = 1
conditions = ["transfer", "ensemble"]
answer_removal = "both"
filter_model = "rule"

[study.decoding]
cot_max_tokens = 32
answer_max_tokens = 8
answer_prefix = "Answer:"

[models.smol]
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"

[models.smol_again]  # the same weights under a second name, so that transfer has a pair
model = "llamacpp/smollm2-135m"
base_url = "{llama}"
thinking_format = "think-tags"

[ensembles.duo]
generators = ["smol", "smol_again"]
evaluators = ["smol"]
candidates = 2
max_steps = 2
max_sentence_tokens = 16
"""


@pytest.mark.browser
@pytest.mark.slow
async def test_a_real_runs_explorer(browser: Page, llama_server: str, tmp_path: Path) -> None:
    """A study run on the embedded llama.cpp model: every stored CoT is on its problem's page, the sentences its
    answer removal dropped are struck through, and ensemble sentences carry their generator."""
    db = tmp_path / "real.db"
    summary = await run_study(parse_study(REAL_STUDY.format(llama=llama_server)), db)
    assert not summary.failures
    results = ResultsDB(db, read_only=True)
    try:
        report = build_report(results, "real", "strict")
        page = explorer_page(results, report)
        rows = list(results.explanations("real"))
    finally:
        results.close()
    await open_page(browser, page, tmp_path / "real.html")
    dropped = sum(len(json.loads(r.removal)["dropped"]) for r in rows if r.removal and r.cot is not None)
    steps = sum(step["chosen"] is not None for r in rows if r.trace for step in json.loads(r.trace)["steps"])
    shown_cots, shown_dropped, shown_steps = set(), 0, 0
    for p in range(len({r.problem_id for r in rows})):
        await browser.js(f"location.hash = '#p/{p}'")
        await browser.wait_for(_view("p") + f" && location.hash === '#p/{p}'")
        await browser.js("document.querySelectorAll('.cot-card').forEach(c => c.open = true)")
        shown_cots |= set(await browser.js("[...document.querySelectorAll('.cot-card')].map(c => +c.dataset.cot)"))
        shown_dropped += await browser.js(_count("del.dropped"))
        shown_steps += await browser.js(_count(".sent"))
    assert shown_cots == set(range(len(rows)))
    assert (shown_dropped, shown_steps) == (dropped, steps) and steps > 0
    await shoot(browser, "explorer-real-problem")
    _clean(browser)


@pytest.mark.browser
@pytest.mark.slow
async def test_the_papers_release_opens_quickly_and_every_cot_is_reachable(browser: Page, tmp_path: Path) -> None:
    if not (GENEX / "outputs").is_dir():
        pytest.skip(f"the paper's released outputs are not at {GENEX} (see ../shared/data/README.md)")
    db = tmp_path / "genex.db"
    assert run("import", "genex", str(GENEX), "--db", str(db)).returncode == 0
    out = tmp_path / "genex.html"
    made = run("report", str(db), "--metric", "paper", "--format", "html", "--out", str(out))
    assert made.returncode == 0, made.stderr
    size = out.stat().st_size
    results = ResultsDB(db, read_only=True)
    try:
        stored = sum(1 for _ in results.explanations("genex"))
        trials = sum(1 for _ in results.trials("genex"))
    finally:
        results.close()
    seconds = await open_page(browser, out.read_text(encoding="utf-8"), tmp_path / "genex-copy.html")
    print(f"genex explorer: {size / 1e6:.2f} MB, {stored} stored CoTs, ready in {seconds:.2f} s")
    assert seconds < GENEX_OPEN_S
    assert size < 5e6
    await shoot(browser, "explorer-genex-overview")
    # The release's models by their aliases, and the user study's ratings beside consistency (n = 4, said to be few).
    labels = await browser.js(
        "[...document.querySelectorAll('#chart-consistency text.label')].map(t => t.firstChild.data)"
    )
    assert {"transfer:QwQ", "transfer:NRR", "ensemble:QwQ+DAPO/OSS"} <= set(labels), labels
    assert await browser.js(_count("#ratings tbody tr")) == 4
    assert "too few for a correlation" in await browser.js("document.body.textContent")
    # Every problem is listed, and every stored CoT is on its problem's page.
    await browser.click("#all-problems")
    await browser.wait_for(_view("problems"))
    while await browser.js("!!document.querySelector('button.more')"):
        await browser.click("button.more")
    problems = await browser.js("[...document.querySelectorAll('#problems tbody tr')].map(r => +r.dataset.problem)")
    assert len(problems) == 100
    reached: set[int] = set()
    answers = 0
    recent: deque[float] = deque()
    for p in problems:
        await _below_chromiums_navigation_limit(recent, navigations=2)  # a click and a step back
        await browser.click(f'#problems tr[data-problem="{p}"]')
        await browser.wait_for(_view("p"))
        reached |= set(await browser.js("[...document.querySelectorAll('.cot-card')].map(c => +c.dataset.cot)"))
        answers += await browser.js(_count("#answers td.answer"))  # each opens the evaluator's output on a click
        await browser.js("history.back()")
        await browser.wait_for(_view("problems"))
        await browser.wait_for(f"!!document.querySelector('#problems tr[data-problem=\"{p}\"]')")
    assert reached == set(range(stored))
    assert answers == trials == 8500
    await browser.click('#problems tr[data-problem="10"]')
    await browser.wait_for(_view("p"))
    await browser.click("#cots .cot-card summary")
    # A CoT's source shows by its alias, with the full name on hover.
    first = await browser.js(
        "[...document.querySelectorAll('#cots .cot-card summary b')].map(b => [b.textContent, b.title])"
    )
    assert ["DAPO", "BytedTsinghua-SIA_DAPO-Qwen-32B"] in first
    await shoot(browser, "explorer-genex-problem")
    _clean(browser)
