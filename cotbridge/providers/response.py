"""Turning OpenAI-shaped response JSON into cotbridge records, whatever dialect the server speaks."""

from __future__ import annotations

from typing import Any

from cotbridge.types import TokenLogprob, Usage

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_inline_thinking(text: str) -> tuple[str | None, str]:
    """Splits `<think>...</think>` out of text: (reasoning, final text).

    Handles a reasoning channel opened by the prompt (only `</think>` in the text) and one never closed
    (generation cut off: everything after `<think>` is reasoning, the final text is empty).
    """
    close = text.find(THINK_CLOSE)
    open_ = text.find(THINK_OPEN)
    if close == -1 and open_ == -1:
        return None, text
    if close == -1:
        return text[open_ + len(THINK_OPEN) :].strip(), ""
    start = open_ + len(THINK_OPEN) if -1 < open_ < close else 0
    return text[start:close].strip(), text[close + len(THINK_CLOSE) :].strip()


def parse_usage(response: dict[str, Any]) -> Usage:
    usage = response.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=int(details.get("reasoning_tokens") or 0),
    )


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


def parse_chat_choice(choice: dict[str, Any], prefill: str | None) -> tuple[str, str | None, str | None]:
    """(final text, reasoning, finish_reason) of one chat choice.

    Reasoning comes from `message.reasoning` (vLLM now), `message.reasoning_content` (older vLLM, DeepSeek),
    or inline `<think>` tags in the content.
    """
    message = choice.get("message") or {}
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    text, reasoning = split_reasoning(message.get("content"), reasoning, prefill)
    return text, reasoning, choice.get("finish_reason")


def split_reasoning(content: str | None, reasoning: str | None, prefill: str | None) -> tuple[str, str | None]:
    """(final text, reasoning) from a message's content and its separate reasoning field, if any.

    With an assistant prefill, servers differ: vLLM returns only the continuation, llama.cpp returns prefill +
    continuation; both give the same result here. A prefill that opened `<think>` makes the content's start
    reasoning until `</think>`.
    """
    content = content or ""
    if prefill and content.startswith(prefill):
        content = content[len(prefill) :]
    # A prefill that opened the channel and left it open holds the start of the reasoning.
    opened = prefill is not None and THINK_OPEN in prefill and THINK_CLOSE not in prefill[prefill.rfind(THINK_OPEN) :]
    if reasoning is not None:
        if opened:
            assert prefill is not None
            reasoning = prefill[prefill.rfind(THINK_OPEN) + len(THINK_OPEN) :] + reasoning
        return content.strip(), reasoning.strip()
    if prefill is not None and THINK_OPEN in prefill:
        return _swap(split_inline_thinking(prefill + content))
    if THINK_OPEN in content or THINK_CLOSE in content:
        return _swap(split_inline_thinking(content))
    return content, None


def _swap(pair: tuple[str | None, str]) -> tuple[str, str | None]:
    return pair[1], pair[0]


def is_cacheable_choice(choice: dict[str, Any]) -> bool:
    """Refusals and empty outputs are not cached (DESIGN.md, cache rules): a rerun should try again.

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
        return bool(message.get("content") or message.get("reasoning") or message.get("reasoning_content"))
    return bool(choice.get("text")) or choice.get("finish_reason") == "stop"


def first_choice_fields(response: dict[str, Any]) -> dict[str, Any]:
    """The first choice's content, reasoning, finish_reason and logprobs, as the cache stores them in columns."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message")
    if message is not None:
        content = message.get("content")
        reasoning = message.get("reasoning") or message.get("reasoning_content")
    else:
        content, reasoning = choice.get("text"), None
    return {
        "content": content,
        "reasoning": reasoning,
        "finish_reason": choice.get("finish_reason"),
        "logprobs": choice.get("logprobs"),
    }
