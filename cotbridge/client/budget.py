"""A spending limit across every priced model of a bridge, which concurrent requests together never pass.

Prices are USD per million tokens (`cotbridge.options.Price`); reasoning tokens are billed as output tokens, as
the hosted APIs do.
"""

from __future__ import annotations

from cotbridge.errors import BudgetExceeded, ConfigError
from cotbridge.options import Price


class Budget:
    """A spending limit in USD across every priced model of a bridge.

    Before a request, its worst case (`estimated_tokens` all billed at the output price) is reserved; if that
    could pass the limit, the request is refused with BudgetExceeded. After it, the reservation is replaced by
    the real cost. So concurrent requests cannot together overshoot the limit. A batch model's request is reserved
    at its live price (its batch job may give it no result, and it is then sent live and billed at that price), and
    charged at the price it was billed at (`cotbridge.client.pipeline.RequestPipeline._send_admitted`).
    """

    def __init__(self, limit_usd: float) -> None:
        if limit_usd <= 0:
            raise ConfigError(f"budget_usd must be more than 0, got {limit_usd}")
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0

    def reserve(self, price: Price, estimated_tokens: int, model: str) -> float:
        worst = estimated_tokens * price.output / 1e6
        if self.spent_usd + self.reserved_usd + worst > self.limit_usd:
            raise BudgetExceeded(
                f"{model}: this request could cost up to ${worst:.4f}, and ${self.spent_usd:.4f} of the "
                f"${self.limit_usd:.2f} budget is spent (${self.reserved_usd:.4f} more in flight); raise budget_usd "
                "to go on (finished work is kept and will not be paid for again)"
            )
        self.reserved_usd += worst
        return worst

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved_usd -= reserved
        self.spent_usd += actual
