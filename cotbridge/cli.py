"""`cotbridge` terminal commands: a thin layer over the library that shows progress and tables with rich."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from cotbridge import __version__
from cotbridge.bridge import Bridge
from cotbridge.cache import ResponseStore
from cotbridge.errors import CotbridgeError, ProviderError, UnsupportedOperation
from cotbridge.model import Model
from cotbridge.providers.transport import RetryPolicy
from cotbridge.types import Message

DEFAULT_MODEL = "local/smollm2-135m"
DEFAULT_CACHE = "cotbridge-cache.db"
THINK_SYSTEM = (
    "You are a careful assistant. Think step by step inside <think> </think> tags, "
    "then give the final answer after the closing tag."
)

console = Console()
errors = Console(stderr=True)


async def _think_then_answer(model: Model, question: str, max_tokens: int) -> tuple[str, str]:
    """Opens the model's reasoning channel, lets it think, closes the channel if it did not, and asks for the
    answer: (reasoning, answer). Works on plain instruct models too: the `<think>` tag is given to them."""
    messages: list[Message] = [
        {"role": "system", "content": THINK_SYSTEM},
        {"role": "user", "content": question},
    ]
    thought = await model.chat(
        [*messages, {"role": "assistant", "content": "<think>\n"}], max_tokens=max_tokens, stop=["</think>"]
    )
    reasoning = (thought.reasoning or thought.text).strip()
    answer = await model.chat(
        [*messages, {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n"}],
        max_tokens=max_tokens,
    )
    return reasoning, answer.text.strip()


async def _ask(args: argparse.Namespace) -> int:
    async with Bridge(cache=None if args.no_cache else args.cache) as bridge:
        model = bridge.model(args.model, base_url=args.base_url)
        with console.status(f"asking {args.model} ..."):
            reasoning, answer = await _think_then_answer(model, args.question, args.max_tokens)
        console.print(Panel(reasoning or "(none)", title="reasoning", border_style="dim"))
        console.print(Panel(answer or "(empty)", title=f"answer from {args.model}", border_style="green"))
        stats = bridge.stats
        console.print(
            f"[dim]{stats.requests} request(s), {stats.cache_hits} cache hit(s)"
            + (f", cache {bridge.cache_path}" if bridge.cache_path else "")
            + "[/dim]"
        )
    return 0


async def _check_one(bridge: Bridge, name: str, base_url: str | None) -> dict[str, Any]:
    """Probes what a model's server actually does: health, served models, chat, completions, logprobs, scoring."""
    model = bridge.model(name, base_url=base_url)
    caps = model.capabilities
    row: dict[str, Any] = {"model": name, "provider": model.provider.name}
    try:
        await model._start()
        health = await model.provider.health()
        row["health"] = "ok"
        row["served"] = ", ".join(str(s) for s in health.get("served_models", [])) or "?"
    except ProviderError as exc:
        row["health"] = f"down: {exc.detail[:60]}"
        return row
    probe = [{"role": "user", "content": "Say OK."}]
    try:
        chat = await model.chat(probe, max_tokens=4, logprobs=1)
        row["chat"] = "yes"
        row["logprobs"] = "yes" if chat.logprobs else "no"
        row["reasoning field"] = "yes" if caps.reasoning_field else "inline <think> only"
    except ProviderError as exc:
        row["chat"] = f"no ({exc.status})"
    try:
        await model.complete("Hello", max_tokens=2)
        row["completions"] = "yes"
    except ProviderError as exc:
        row["completions"] = f"no ({exc.status})"
    try:
        scored = await model.score("The sky is", " blue.")
        row["prompt scoring"] = f"yes ({scored.method})"
    except (UnsupportedOperation, ProviderError) as exc:
        row["prompt scoring"] = f"no: {str(exc)[:60]}"
    return row


async def _models_check(args: argparse.Namespace) -> int:
    columns = [
        "model",
        "provider",
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
            rows = [await _check_one(bridge, name, args.base_url) for name in args.models]
    # One column per model: capability names stay readable however many models are checked.
    table = Table(title="model capabilities")
    table.add_column("")
    for row in rows:
        table.add_column(row["model"], overflow="fold")
    for column in columns[1:]:
        table.add_row(column, *[str(row.get(column, "-")) for row in rows])
    console.print(table)
    return 0 if all(r.get("health") == "ok" for r in rows) else 1


def _cache_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.db).is_file():
        errors.print(f"[red]error:[/red] no cache file at {args.db}; pass the path you gave Bridge(cache=...)")
        return 2
    store = ResponseStore(args.db)
    try:
        stats = store.stats()
    finally:
        store.close()
    table = Table(title=f"cache {stats['path']}")
    for column in ["provider", "model", "entries", "hits", "prompt tokens", "completion tokens"]:
        table.add_column(column, justify="right" if column not in ("provider", "model") else "left")
    for m in stats["models"]:
        table.add_row(
            m["provider"],
            m["model"],
            str(m["entries"]),
            str(m["hits"]),
            str(m["prompt_tokens"]),
            str(m["completion_tokens"]),
        )
    console.print(table)
    console.print(f"{stats['entries']} entries, {stats['hits']} hits, {stats['size_bytes'] / 1e6:.2f} MB on disk")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cotbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cotbridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="ask one model a question; print its reasoning and answer")
    ask.add_argument("question")
    ask.add_argument("--model", default=DEFAULT_MODEL, help=f"provider/model-id (default {DEFAULT_MODEL})")
    ask.add_argument("--base-url", default=None)
    ask.add_argument("--cache", default=DEFAULT_CACHE, help=f"SQLite cache file (default {DEFAULT_CACHE})")
    ask.add_argument("--no-cache", action="store_true")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.set_defaults(run=lambda a: asyncio.run(_ask(a)))

    models = sub.add_parser("models", help="inspect models").add_subparsers(dest="models_command", required=True)
    check = models.add_parser("check", help="health, served model and capabilities of each model")
    check.add_argument("models", nargs="+", metavar="MODEL")
    check.add_argument("--base-url", default=None)
    check.add_argument("--timeout", type=float, default=60.0)
    check.set_defaults(run=lambda a: asyncio.run(_models_check(a)))

    cache = sub.add_parser("cache", help="inspect a response cache").add_subparsers(dest="cache_command", required=True)
    stats = cache.add_parser("stats", help="entries, size and hit counts per model")
    stats.add_argument("db")
    stats.set_defaults(run=_cache_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CotbridgeError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]; finished responses are in the cache")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
