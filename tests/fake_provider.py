"""A provider without a server, for unit tests of Model and the request pipeline (real-server tests stay apart)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from cotbridge.providers import BaseProvider, Capabilities


class FakeProvider(BaseProvider):
    """Answers chat and completions with numbered texts after `delay_s`, and records every body it was sent."""

    name = "fake"

    def __init__(self, *, n_samples: bool = True, reply: str = "answer", delay_s: float = 0.0) -> None:
        self.model_name, self.served_model, self.endpoint_id = "fake/m", "m", "fake:"
        self.capabilities = replace(Capabilities(), n_samples=n_samples)
        self.reply, self.delay_s = reply, delay_s
        self.bodies: list[dict[str, Any]] = []

    async def _respond(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        self.bodies.append(body)
        await asyncio.sleep(self.delay_s)
        n, call = body.get("n", 1), len(self.bodies)
        texts = [f"{self.reply} {call}.{i}" for i in range(n)]
        choices = [{"index": i, **({"message": {"content": t}} if chat else {"text": t})} for i, t in enumerate(texts)]
        usage = {"prompt_tokens": 10, "completion_tokens": 3 * n}
        return {"choices": [{**c, "finish_reason": "stop"} for c in choices], "usage": usage}

    def chat(self, body: dict[str, Any]) -> Any:
        return self._respond(body, chat=True)

    def completions(self, body: dict[str, Any]) -> Any:
        return self._respond(body, chat=False)
