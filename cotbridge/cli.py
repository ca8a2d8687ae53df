"""The `cotbridge` command: argparse and printing over the library (rich progress bars and tables)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from types import FrameType

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cotbridge import __version__
from cotbridge.analysis.explorer import explorer_page
from cotbridge.analysis.reading import reading_lines
from cotbridge.analysis.render import render_csv, render_json, render_table
from cotbridge.analysis.report import Report, build_report
from cotbridge.cache.batch_jobs import batch_jobs_of
from cotbridge.cache.location import CACHE_DIR_ENV, default_cache_path
from cotbridge.cache.store import ResponseStore
from cotbridge.client import Bridge
from cotbridge.client.probe import probe
from cotbridge.cot import explain
from cotbridge.cot.transfer import resolve_mode
from cotbridge.errors import CotbridgeError
from cotbridge.formats import ThinkingFormat
from cotbridge.options import RetryPolicy
from cotbridge.providers.transport import public_url
from cotbridge.records import Message, Problem, Score
from cotbridge.serving import ServePlan, ServerFleet, plan_servers, serving, with_served_urls
from cotbridge.serving.plan import GPU_COUNT_ENV
from cotbridge.study import RunSummary, StudyConfig, load_study, parse_study, run_study
from cotbridge.study.files import checked_report_path, removed_if_left_empty, write_atomically
from cotbridge.study.importers import import_genex
from cotbridge.study.phases import Progress as StudyProgress
from cotbridge.study.ratings import read_ratings
from cotbridge.study.results import ResultsDB

DEFAULT_MODEL = "local/smollm2-135m"
ASK_TIMEOUT_S = 120.0
CHECK_TIMEOUT_S = 30.0
# Text from users, files and servers is printed as is: markup is escaped where it is written (rich.markup.escape
# or Text), and ":name:" is never turned into an emoji.
console = Console(emoji=False)
errors = Console(stderr=True, emoji=False)


USER_GUIDE = """\
cotbridge studies whether a reasoning model's chain of thought (CoT) carries
over to other models. It collects CoTs, gives each one to the other models (as
is, with its answer sentences removed, or as a sentence-level ensemble of
several models' CoTs), and reports how often the models then agree and how
often they are right. Open models run on vLLM or any OpenAI-compatible server,
closed ones through their vendors' APIs. Every response is cached in SQLite: a
study resumes where it stopped, and a rerun costs nothing.

Start with `cotbridge demo`: two small models that run on this machine (no GPU,
no API key). Then copy a study file from examples/ and `cotbridge run` it."""
READ_MORE = """\
`cotbridge COMMAND --help` tells more about each command. The README covers
study files, models and providers, caching, reports, and scaling out."""


def _fail(message: object) -> None:
    errors.print(f"[red]error:[/red] {escape(str(message))}")


def _question(question: str, fmt: ThinkingFormat) -> Problem:
    """A question as a problem without a gold answer; a model with a reasoning channel is told where to think."""
    messages: list[Message] = [{"role": "user", "content": question}]
    if fmt.can_prefill:
        where = f"Think step by step inside {fmt.open.strip()} {fmt.stop} tags, then give the final answer after them."
        messages.insert(0, {"role": "system", "content": f"You are a careful assistant. {where}"})
    return Problem(id="ask", dataset="ask", prompt=messages, gold=None, checker=lambda text: Score(None, None, None))


def _ask_cache(args: argparse.Namespace) -> str | None:
    """The cache `ask` uses: none, the file given, or the user's default cache (its folder made on first use)."""
    if args.no_cache:
        return None
    if args.cache is not None:
        return str(args.cache)
    path = default_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


async def _ask(args: argparse.Namespace) -> int:
    async with Bridge(cache=_ask_cache(args), timeout_s=args.timeout) as bridge:
        model = bridge.model(args.model, base_url=args.base_url, thinking_format=args.thinking_format)
        if args.thinking_format is None and model.thinking_format.name == "none":
            # A plain instruct model is given the think-tags channel, so that it reasons before it answers.
            model = bridge.model(args.model, base_url=args.base_url, thinking_format="think-tags")
        with console.status(f"asking {escape(args.model)} ..."):
            told = await explain(model, _question(args.question, model.thinking_format), max_tokens=args.max_tokens)
        console.print(Panel(Text(told.cot or "(none)"), title="reasoning", border_style="dim"))
        answer_title = Text(f"answer from {args.model}")
        console.print(Panel(Text(told.final_text or "(empty)"), title=answer_title, border_style="green"))
        stats = bridge.stats
        cache_part = f", cache {bridge.cache_path}" if bridge.cache_path else ""
        console.print(Text(f"{stats.requests} request(s), {stats.cache_hits} cache hit(s){cache_part}", style="dim"))
        _print_notes(stats.notes)
    return 0


def _print_notes(notes: Sequence[str]) -> None:
    """What a server's answers made cotbridge change (a refused reasoning summary, say), one line each."""
    for note in notes:
        console.print(Text.assemble(("note: ", "yellow"), note))


async def _check_one(bridge: Bridge, name: str, base_url: str | None, replicas: bool) -> dict[str, str]:
    """What the model's server does (the client's probe) and how a study would treat it (its thinking format and
    the injection mode it takes a foreign CoT in). Each replica is checked on its own, its column named by it."""
    label = f"{name} @ {public_url(base_url)}" if replicas and base_url is not None else name
    try:
        model = bridge.model(name, base_url=base_url)
    except CotbridgeError as exc:  # a missing key or a bad model string: this row says so, the others still run
        return {"model": label, "health": f"not opened: {exc}"}
    facts = {"model": label, "thinking format": model.thinking_format.name, "injection": resolve_mode(model, None)}
    return {**facts, **await probe(model)}


async def _models_check(args: argparse.Namespace) -> int:
    columns = [
        "model",
        "provider",
        "thinking format",
        "CoT visible",
        "thinking",
        "capabilities from",
        "notes",
        "injection",
        "health",
        "served",
        "chat",
        "completions",
        "logprobs",
        "prompt scoring",
        "reasoning field",
    ]
    # A probe should answer quickly: one retry at most.
    retry = RetryPolicy(max_attempts=2, initial_wait_s=0.2)
    async with Bridge(cache=None, timeout_s=args.timeout, max_concurrency=4, retry=retry) as bridge:
        with console.status("probing ..."):
            urls = args.base_url or [None]
            rows = [await _check_one(bridge, name, url, len(urls) > 1) for name in args.models for url in urls]
    # One column per model: capability names stay readable however many models are checked.
    table = Table(title="model capabilities")
    table.add_column("")
    for row in rows:
        table.add_column(Text(row["model"]), overflow="fold")
    for column in columns[1:]:
        table.add_row(column, *[Text(str(row.get(column, "-"))) for row in rows])
    console.print(table)
    return 0 if all(r.get("health") == "ok" for r in rows) else 1


def _cache_stats(args: argparse.Namespace) -> int:
    db = args.db or str(default_cache_path())
    if not Path(db).is_file():
        hint = "pass the path you gave Bridge(cache=...) or `ask --cache`" if args.db else "`cotbridge ask` makes it"
        _fail(f"no cache file at {db}; {hint}")
        return 2
    store = ResponseStore(db, read_only=True)
    try:
        stats = store.stats()
    finally:
        store.close()
    table = Table(title=Text(f"cache {stats['path']}"))
    for column in ["provider", "model", "entries", "hits", "prompt tokens", "completion tokens"]:
        table.add_column(column, justify="right" if column not in ("provider", "model") else "left")
    for m in stats["models"]:
        table.add_row(
            Text(m["provider"]),
            Text(m["model"]),
            str(m["entries"]),
            str(m["hits"]),
            str(m["prompt_tokens"]),
            str(m["completion_tokens"]),
        )
    console.print(table)
    console.print(f"{stats['entries']} entries, {stats['hits']} hits, {stats['size_bytes'] / 1e6:.2f} MB on disk")
    return 0


def _cache_path(args: argparse.Namespace) -> int:
    console.print(Text(str(default_cache_path())), soft_wrap=True)
    return 0


class ProgressView:
    """Rich progress for a study run: one bar per phase, with per-model counts of done, cached and failed; the
    phases run side by side, and a bar's total grows as its phase learns of more items."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.totals: dict[str, int] = {}
        self.counts: dict[str, dict[str, list[int]]] = {}

    def __call__(self, event: StudyProgress) -> None:
        if event.plan is not None:
            self._print_plan(event.plan)
            return
        if event.total is not None:
            self.tasks[event.phase] = self.progress.add_task(event.phase, total=event.total)
            self.totals[event.phase] = event.total
            self.counts[event.phase] = {}
            return
        task = self.tasks[event.phase]
        if event.more:  # the phase learnt of more items (its inputs came in)
            self.totals[event.phase] += event.more
            self.progress.update(task, total=self.totals[event.phase])
            return
        per_model = self.counts[event.phase].setdefault(event.model or "?", [0, 0, 0])
        per_model[0] += event.done
        per_model[1] += event.cached
        per_model[2] += event.error is not None
        models = "  ".join(
            f"{escape(name)} {done}"
            + (f" ({cached} cached)" if cached else "")
            + (f" [red]{failed} failed[/red]" if failed else "")
            for name, (done, cached, failed) in self.counts[event.phase].items()
        )
        self.progress.update(task, advance=event.done, description=f"{escape(event.phase)}: {models}")

    # A plan column per model needs about this many characters to stay legible (longer values fold).
    PLAN_COLUMN = 24

    def _print_plan(self, plan: list[dict[str, str]]) -> None:
        """The plan turned on its side: a row per field, a column per model, so ten fields fit 80 columns; more
        models than fit side by side make several tables."""
        console = self.progress.console
        fields = list(plan[0]) if plan else []
        per_table = max(1, (console.width - 20) // self.PLAN_COLUMN)
        for start in range(0, len(plan), per_table):
            models = plan[start : start + per_table]
            table = Table(title="plan" if start == 0 else None, box=box.SIMPLE_HEAD, pad_edge=False)
            table.add_column("", style="dim", no_wrap=True)
            for row in models:
                table.add_column(Text(str(row.get("name", ""))), overflow="fold")
            for name in fields:
                if name != "name":
                    table.add_row(escape(name), *(Text(str(row.get(name, ""))) for row in models))
            console.print(table)


def _run_study(config: StudyConfig, db: str, problems: list[Problem] | None = None) -> RunSummary:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        watching = _watch_batch_jobs(progress, db) if any(m.batch for m in config.models.values()) else None
        with watching or contextlib.nullcontext():
            # What is loaded by now lives as long as the run: out of the collector's sight, a big study's full
            # collections do not walk it again and again.
            gc.collect()
            gc.freeze()
            return asyncio.run(run_study(config, db, on_progress=ProgressView(progress), problems=problems))


BATCH_WATCH_S = 2.0  # how often the batch line reads the jobs' statuses


@contextlib.contextmanager
def _watch_batch_jobs(progress: Progress, db: str) -> Iterator[None]:
    """A progress line for a study with batch models: its jobs at the vendors and their last known status, read
    from the results DB (where the run records them as it polls), so hours of waiting do not look like a hang."""
    task = progress.add_task("batch jobs: none sent yet", total=None)
    stop = threading.Event()

    def show() -> None:
        with contextlib.suppress(CotbridgeError, sqlite3.Error):
            jobs = batch_jobs_of(db)
            if jobs:
                states = Counter(str(job["status"]) for job in jobs)
                requests = sum(int(str(job["requests"])) for job in jobs)
                listed = ", ".join(f"{n} {status}" for status, n in states.most_common())
                progress.update(task, description=f"batch jobs: {len(jobs)} ({listed}), {requests} requests")

    def watch() -> None:
        while not stop.wait(BATCH_WATCH_S):
            show()

    watcher = threading.Thread(target=watch, name="batch-jobs-line", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        show()  # the jobs as the run left them


def _print_summary(summary: RunSummary, db: str) -> None:
    console.print(
        f"{summary.trials} trial(s) run, {summary.skipped} already done, {summary.explanations} CoT(s); "
        f"results in {escape(db)}"
    )
    _print_notes(summary.notes)
    if summary.changed:
        console.print(f"{summary.changed} stored trial(s) done again: the study changed what decides them")
    if summary.failures:
        stored = f"{summary.failed_trials} failed trial(s) stored in the results DB; " if summary.failed_trials else ""
        console.print(f"[red]{len(summary.failures)} failure(s)[/red] ({stored}a rerun tries them again):")
        for failure in summary.failures[:20]:
            console.print(f"  [red]-[/red] {escape(str(failure))}")


def _run(args: argparse.Namespace) -> int:
    config = load_study(args.study)
    if args.timeout is not None:
        config.study.retry = config.study.retry.model_copy(update={"timeout_s": args.timeout})
    db = args.db or str(Path(args.study).with_suffix(".db"))
    if not args.serve:
        return _run_on_served(config, args.study, db)
    with _served(plan_servers(config, args.study)):
        return _run_on_served(config, args.study, db)


def _run_on_served(config: StudyConfig, study: str, db: str) -> int:
    """Runs the study with the URLs of its running `cotbridge serve` servers where it leaves base_url unset."""
    config, notes = with_served_urls(config, study)
    _print_notes(notes)
    with removed_if_left_empty(db):
        summary = _run_study(config, db)
    _print_summary(summary, db)
    _show_report(db, config.study.name, "strict")
    return 1 if summary.failures else 0


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers the way Ctrl-C does


def _shield_from_signals() -> None:
    """While the servers stop, a second Ctrl-C (or SIGTERM) must not leave some of them running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    errors.print("stopping the vLLM servers ...")


@contextlib.contextmanager
def _served(plan: ServePlan) -> Iterator[ServerFleet]:
    """The plan's servers, started and healthy, with their URLs file written; stopped on leaving, on Ctrl-C and on
    SIGTERM alike."""
    _print_notes(plan.notes)
    for server in plan.servers:
        console.print(Text(f"models.{server.name}: {server.shell_line()}"), soft_wrap=True)
        console.print(Text(f"  log: {server.log}", style="dim"))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _stop_requested)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [signal.signal(sig, handler) for sig, handler in previous.items()])
        with console.status(f"starting {len(plan.servers)} vLLM server(s); waiting for their /health ..."):
            fleet = stack.enter_context(serving(plan))
        stack.callback(_shield_from_signals)  # runs first on leaving, before the fleet stops
        table = Table(title="vLLM servers", box=box.SIMPLE_HEAD)
        for column in ("model", "base_url", "GPUs", "pid"):
            table.add_column(column)
        for server in plan.servers:
            devices = ",".join(server.devices) or "-"
            table.add_row(Text(server.name), Text(server.base_url), devices, str(fleet.processes[server.name].pid))
        console.print(table)
        console.print(Text(f"URLs written to {plan.urls_file} (cotbridge run reads them)", style="dim"))
        yield fleet


def _serve(args: argparse.Namespace) -> int:
    config = load_study(args.study)
    environ = dict(os.environ) if args.gpus is None else {**os.environ, GPU_COUNT_ENV: str(args.gpus)}
    plan = plan_servers(config, args.study, dry_run=args.dry_run, environ=environ)
    if args.dry_run:
        _print_notes(plan.notes)
        for server in plan.servers:
            console.print(Text(f"# models.{server.name}: {server.base_url}, log {server.log}", style="dim"))
            console.print(Text(server.shell_line()), soft_wrap=True)
        return 0
    try:
        with _served(plan) as fleet:
            console.print("serving; Ctrl-C stops every server")
            while True:
                fleet.check_running()
                time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopped every server")
        return 130


def _show_report(
    db: str,
    study: str | None,
    metric: str,
    fmt: str = "table",
    out: str | None = None,
    *,
    read_only: bool = False,
    ratings: str | None = None,
) -> Report:
    """Shows (or writes) the study's report, and returns it."""
    target = checked_report_path(out, db) if out is not None else None
    given = read_ratings(ratings) if ratings is not None else None  # a bad CSV is named before any work
    results = ResultsDB(db, read_only=read_only)
    try:
        report = build_report(results, study, metric, ratings=given)  # type: ignore[arg-type]
        # The explorer reads the trials and CoTs behind the numbers too, so it is made while the DB is open.
        page = explorer_page(results, report) if fmt == "html" else None
    finally:
        results.close()
    if fmt == "table":
        if target is None:
            render_table(report, console)
            return report
        buffer = io.StringIO()
        render_table(report, Console(file=buffer, width=160, emoji=False, force_terminal=False))
        text = buffer.getvalue()
    else:
        text = page if page is not None else {"json": render_json, "csv": render_csv}[fmt](report)
        if target is None:
            print(text)
            return report
    write_atomically(target, text)
    console.print(f"wrote {escape(str(target))}")
    return report


def _demo(args: argparse.Namespace) -> int:
    text = (resources.files("cotbridge") / "studies" / "demo.toml").read_text(encoding="utf-8")
    config = parse_study(text, "cotbridge demo")
    console.print(
        "[bold]cotbridge demo[/bold]: local/smollm2-135m and local/gemma3-270m (llama.cpp in this process), "
        f"{config.study.sample} one-step word problems, conditions {', '.join(config.study.conditions)}, "
        "with and without answer removal"
    )
    with removed_if_left_empty(args.db):
        summary = _run_study(config, args.db)
    _print_summary(summary, args.db)
    report = _show_report(args.db, config.study.name, "strict")
    console.print("\n[bold]What this run says[/bold]")
    for line in reading_lines(report, models="two tiny local models (135M and 270M parameters)"):
        console.print(Text(line))
    console.print(
        f"\nSee every CoT and answer behind these numbers: cotbridge report {escape(args.db)} --format html "
        "--out demo.html, then open demo.html in a browser. A rerun is served from the cache in seconds."
    )
    return 1 if summary.failures else 0


def _report(args: argparse.Namespace) -> int:
    if not Path(args.db).is_file():
        _fail(f"no results DB at {args.db}; run a study or `cotbridge import genex` first")
        return 2
    _show_report(args.db, args.study, args.metric, args.format, args.out, read_only=True, ratings=args.ratings)
    return 0


def _import_genex(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    csv_path = Path(args.medcalc) if args.medcalc else folder.parent / "medcalc-bench" / "test_data.csv"
    if not csv_path.is_file():
        _fail(
            f"the MedCalc-Bench v1.0 test set is needed to re-score answers; not found at {csv_path}; "
            "pass --medcalc PATH/test_data.csv"
        )
        return 2
    with removed_if_left_empty(args.db):
        results = ResultsDB(args.db)
        try:
            with console.status(f"importing {escape(str(folder))} ..."):
                summary = import_genex(folder, results, medcalc_csv=csv_path, study=args.study)
        finally:
            results.close()
    console.print(
        f"imported {summary.files} files: {summary.trials} trials ({summary.crashed} crashed transfer rows kept as "
        f"missing answers), {summary.explanations} source answers; evaluators: {escape(', '.join(summary.evaluators))}"
    )
    if summary.ratings:
        console.print(f"{summary.ratings} human ratings of the user study (the report sets them against consistency)")
    console.print(f"now: cotbridge report {escape(args.db)} --metric paper")
    return 0


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds above 0")
    return value


def _positive(text: str) -> int:
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
    return value


def _add_tool_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands a user meets later: checking models, serving them, and the cache."""
    models = sub.add_parser("models", help="check models: health, served model and capabilities").add_subparsers(
        dest="models_command", required=True
    )
    check = models.add_parser("check", help="health, served model and capabilities of each model")
    check.add_argument("models", nargs="+", metavar="MODEL")
    check.add_argument(
        "--base-url", action="append", default=None, help="the server's /v1 URL; give it once per replica"
    )
    check.add_argument(
        "--timeout", type=_seconds, default=CHECK_TIMEOUT_S, help=f"seconds per request (default {CHECK_TIMEOUT_S:g})"
    )
    check.set_defaults(run=lambda a: asyncio.run(_models_check(a)))

    serve = sub.add_parser(
        "serve",
        help="start vLLM for every model of a study with a [models.NAME.serve] table; Ctrl-C stops them",
        description="Starts one vLLM server per model with a [models.NAME.serve] table (flags from its family and "
        "table, GPUs without overlap), waits for their /health, prints their URLs and writes them to "
        "STUDY.servers.json, where `cotbridge run` finds them. Ctrl-C or SIGTERM stops every server.",
    )
    serve.add_argument("study", help="the study TOML file")
    serve.add_argument("--dry-run", action="store_true", help="print the exact commands; start nothing")
    serve.add_argument(
        "--gpus", type=int, default=None, help="plan for a machine with this many GPUs (default: nvidia-smi -L)"
    )
    serve.set_defaults(run=_serve)

    cache = sub.add_parser("cache", help="where the default cache is, and what a cache holds").add_subparsers(
        dest="cache_command", required=True
    )
    stats = cache.add_parser("stats", help="entries, size and hit counts per model")
    stats.add_argument("db", nargs="?", default=None, help="the cache file (default: the one `cotbridge ask` uses)")
    stats.set_defaults(run=_cache_stats)
    where = cache.add_parser("path", help="print the default cache file (the one `cotbridge ask` uses)")
    where.set_defaults(run=_cache_path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotbridge",
        description=USER_GUIDE,
        epilog=READ_MORE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cotbridge {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands (in the order a newcomer meets them)"
    )

    demo = sub.add_parser("demo", help="a small real study on the embedded local models, then its report")
    demo.add_argument("--db", default="cotbridge-demo.db", help="results and cache DB (default cotbridge-demo.db)")
    demo.set_defaults(run=_demo)

    ask = sub.add_parser("ask", help="ask one model a question; print its reasoning and answer")
    ask.add_argument("question")
    ask.add_argument("--model", default=DEFAULT_MODEL, help=f"provider/model-id (default {DEFAULT_MODEL})")
    ask.add_argument("--base-url", default=None)
    ask.add_argument(
        "--cache",
        default=None,
        help=f"SQLite cache file (default: {default_cache_path()}; ${CACHE_DIR_ENV} moves it)",
    )
    ask.add_argument("--no-cache", action="store_true")
    ask.add_argument(
        "--max-tokens", type=_positive, default=256, help="token budget of the reasoning and of the answer"
    )
    ask.add_argument(
        "--timeout", type=_seconds, default=ASK_TIMEOUT_S, help=f"seconds per request (default {ASK_TIMEOUT_S:g})"
    )
    ask.add_argument("--thinking-format", default=None, help="override the model family's (e.g. think-tags)")
    ask.set_defaults(run=lambda a: asyncio.run(_ask(a)))

    run = sub.add_parser(
        "run",
        help="run a study file (resumes where it stopped)",
        description="Runs a study file and prints its report. Exit status: 0 when every trial ran, 1 when any failed "
        "(failed trials are stored with their error, reported, and tried again by the next run), 2 on bad input.",
    )
    run.add_argument("study", help="the study TOML file")
    run.add_argument("--db", default=None, help="results and cache DB (default: the study file with .db)")
    run.add_argument(
        "--timeout", type=_seconds, default=None, help="seconds per request (default: the study file's timeout_s)"
    )
    run.add_argument(
        "--serve",
        action="store_true",
        help="start the study's [models.NAME.serve] servers first (as `cotbridge serve`), stop them at the end",
    )
    run.set_defaults(run=_run)

    report = sub.add_parser("report", help="consistency, accuracy and transfer tables of a results DB")
    report.add_argument("db")
    report.add_argument("--study", default=None, help="which study in the DB (default: the latest)")
    report.add_argument("--metric", choices=["paper", "strict"], default="strict")
    report.add_argument("--format", choices=["table", "json", "csv", "html"], default="table")
    report.add_argument(
        "--out",
        default=None,
        help="write to this file instead of the terminal (replaced whole; its folder is created; never a database)",
    )
    report.add_argument(
        "--ratings",
        default=None,
        metavar="CSV",
        help="human ratings to set against consistency (columns model_label, value; criterion optional; a label is "
        "a transfer source's or an ensemble's alias); default: the ratings stored with the study",
    )
    report.set_defaults(run=_report)

    importer = sub.add_parser(
        "import", help="import another study's released outputs (the paper's: genex)"
    ).add_subparsers(dest="import_command", required=True)
    genex = importer.add_parser("genex", help="the paper's released MedCalc outputs (genex-medcalc folder)")
    genex.add_argument("folder")
    genex.add_argument("--db", required=True)
    genex.add_argument("--study", default="genex")
    genex.add_argument("--medcalc", default=None, help="MedCalc-Bench test_data.csv (default: beside the folder)")
    genex.set_defaults(run=_import_genex)

    _add_tool_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CotbridgeError as exc:
        _fail(exc)
        return 2
    except sqlite3.Error as exc:
        # The library names the file where it can; this is the last stop before a traceback.
        _fail(f"database: {exc}")
        return 2
    except OSError as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return 2
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]; finished responses are in the cache")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
