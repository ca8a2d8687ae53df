"""Client-side rate limits: requests per minute and tokens per minute for one endpoint, over a sliding window.

Hosted APIs enforce such limits and answer 429 past them; staying under them keeps a study moving instead of
collecting retries. Tokens are estimated before sending (prompt characters / 4 plus the output budget), since the
true count is known only after the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_BUDGET = 256


def estimate_tokens(body: Any) -> int:
    """A rough upper estimate of the tokens a request will count against a tokens-per-minute limit."""
    if not isinstance(body, dict):
        return 0
    text = 0
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            text += len(message["content"])
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        text += len(prompt)
    elif isinstance(prompt, list):
        text += CHARS_PER_TOKEN * len(prompt)
    output = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_OUTPUT_BUDGET
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
