"""Turning OpenAI-shaped response JSON into cotbridge records, whatever dialect the server speaks."""

from __future__ import annotations

from typing import Any

from cotbridge.providers.sent_live import sent_live
from cotbridge.records import TokenLogprob, Usage


def parse_usage(response: dict[str, Any]) -> Usage:
    usage = response.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    reasoning = int(details.get("reasoning_tokens") or 0)
    # (Positional: a frozen record made by keywords costs half as much again, on every response.)
    if sent_live(response):
        return Usage(prompt, completion, reasoning, prompt, completion)
    return Usage(prompt, completion, reasoning)


def parse_logprobs(logprobs: dict[str, Any] | None) -> tuple[TokenLogprob, ...] | None:
    """Both shapes: chat / llama.cpp `content[]` entries, and the legacy `tokens` + `token_logprobs` lists."""
    if not logprobs:
        return None
    content = logprobs.get("content")
    if content is not None:
        return tuple(
            TokenLogprob(
                token=entry.get("token", ""),
                logprob=float(entry["logprob"]),
                token_id=entry.get("id"),
                top=tuple((alt.get("token", ""), float(alt["logprob"])) for alt in entry.get("top_logprobs") or ()),
            )
            for entry in content
        )
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs")
    if tokens is None or values is None:
        return None
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    return tuple(
        TokenLogprob(
            token=token,
            logprob=float(value) if value is not None else float("nan"),
            top=tuple((alt, float(lp)) for alt, lp in (top or {}).items()),
        )
        for token, value, top in zip(tokens, values, tops, strict=False)
    )


def is_cacheable_choice(choice: dict[str, Any]) -> bool:
    """Refusals and empty outputs are not cached: a rerun should try again. Nor is a chat cut off at the token cap
    before any visible answer (its reasoning used up `max_tokens`): it is no answer, and a rerun with a larger budget
    must not be served it.

    One exception: a text completion that stopped on purpose (finish_reason "stop") with nothing before the stop
    is a real answer (a model closing its reasoning at once), and not caching it would make a rerun of a sampled
    request draw a different sample in its place.
    """
    if choice.get("finish_reason") == "content_filter":
        return False
    message = choice.get("message")
    if message is not None:
        if message.get("refusal"):
            return False
        if choice.get("finish_reason") == "length" and not message.get("content"):
            return False
        return bool(message.get("content") or message.get("reasoning") or message.get("reasoning_content"))
    return bool(choice.get("text")) or choice.get("finish_reason") == "stop"


def first_choice_fields(response: dict[str, Any]) -> tuple[str | None, str | None, str | None, Any]:
    """The first choice's (content, reasoning, finish_reason, logprobs), as the cache stores them in columns."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message")
    if message is not None:
        content = message.get("content")
        reasoning = message.get("reasoning") or message.get("reasoning_content")
    else:
        content, reasoning = choice.get("text"), None
    return content, reasoning, choice.get("finish_reason"), choice.get("logprobs")
