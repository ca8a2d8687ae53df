"""Client-side rate limits: requests per minute and tokens per minute for one endpoint, over a sliding window.

Hosted APIs enforce such limits and answer 429 past them; staying under them keeps a study moving instead of
collecting retries. Tokens are estimated before sending (prompt characters / 4 plus the output budget), since the
true count is known only after the answer. The providers' own rate-limit headers say when a limit is used up and
when it resets; `limit_wait_s` and `retry_wait_s` read them (formats below, from each provider's API reference).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_BUDGET = 256


def estimate_tokens(body: Any) -> int:
    """A rough upper estimate of the tokens a request will count against a tokens-per-minute limit."""
    if not isinstance(body, dict):
        return 0
    text = 0
    messages = body.get("messages") or body.get("input") or ()  # chat, or OpenAI's Responses API
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            text += len(message["content"])
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        text += len(prompt)
    elif isinstance(prompt, list):
        text += CHARS_PER_TOKEN * len(prompt)
    output = (
        body.get("max_tokens")
        or body.get("max_completion_tokens")
        or body.get("max_output_tokens")
        or DEFAULT_OUTPUT_BUDGET
    )
    return text // CHARS_PER_TOKEN + int(output) * int(body.get("n") or 1)


class RateLimiter:
    """Waits, first come first served, until a request fits both limits within the last `window_s` seconds."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None, window_s: float = 60.0) -> None:
        if rpm is not None and rpm < 1 or tpm is not None and tpm < 1:
            raise ValueError("rpm and tpm must be at least 1")
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._sent: deque[tuple[float, int]] = deque()
        self._tokens = 0
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0][0] >= self.window_s:
            self._tokens -= self._sent.popleft()[1]

    def _wait_for(self, tokens: int, now: float) -> float:
        wait = 0.0
        if self.rpm is not None and len(self._sent) >= self.rpm:
            wait = self._sent[len(self._sent) - self.rpm][0] + self.window_s - now
        if self.tpm is not None and self._sent and self._tokens + tokens > self.tpm:
            # Wait until enough of the oldest requests leave the window (a lone request larger than the limit
            # goes out into an empty window rather than never).
            freed, until = 0, now
            for sent_at, counted in self._sent:
                freed += counted
                until = sent_at + self.window_s
                if self._tokens - freed + tokens <= self.tpm:
                    break
            wait = max(wait, until - now)
        return wait

    async def acquire(self, tokens: int = 0) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._expire(now)
                wait = self._wait_for(tokens, now)
                if wait <= 0:
                    self._sent.append((now, tokens))
                    self._tokens += tokens
                    return
                await asyncio.sleep(wait)


# (remaining, reset) header pairs. OpenAI: reset as a duration ("1s", "6m0s", "12ms"); Anthropic: reset as an
# RFC 3339 time; OpenRouter and Together: the unprefixed pair, reset as epoch milliseconds or seconds.
RATE_LIMIT_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
    ("x-ratelimit-remaining", "x-ratelimit-reset"),
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _finite(value: str) -> float | None:
    """A number from a header, or None for text, inf and nan (no wait is forever or undefined)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a rate-limit reset, in any of the forms providers send: a duration ("6m0s", "12ms"),
    seconds, an epoch time in seconds or milliseconds, an RFC 3339 time or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    now = time.time() if now is None else now
    parts = _DURATION_PART.findall(value)
    if parts and "".join(number + unit for number, unit in parts) == value:
        return sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    number = _finite(value)
    if number is not None:
        if number > 1e12:  # epoch milliseconds
            return max(0.0, number / 1000 - now)
        if number > 1e9:  # epoch seconds
            return max(0.0, number - now)
        return max(0.0, number)
    try:
        return max(0.0, datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now)
    except (ValueError, OverflowError):
        return parse_retry_after(value)


def limit_wait_s(headers: Mapping[str, str]) -> float | None:
    """Seconds until the latest reset among the limits the headers say are used up; None when none is."""
    wait = None
    for remaining_name, reset_name in RATE_LIMIT_HEADERS:
        remaining = headers.get(remaining_name)
        if remaining is None:
            continue
        count = _finite(remaining)
        if count is not None and count <= 0:
            reset = parse_reset(headers.get(reset_name))
            if reset is not None:
                wait = reset if wait is None else max(wait, reset)
    return wait


def retry_wait_s(headers: Mapping[str, str]) -> float | None:
    """How long a 429 or 503 asks us to wait: Retry-After, else retry-after-ms (OpenAI), else the reset of a
    used-up limit."""
    wait = parse_retry_after(headers.get("retry-after"))
    if wait is not None:
        return wait
    milliseconds = _finite(headers.get("retry-after-ms") or "")
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000)
    return limit_wait_s(headers)
