"""The mark of a response that a batch model (`batch = true`) got from the live API: its batch job gave the request
no result (the item errored or expired, the vendor refused the job, the job could not be followed), so
`BatchProvider` sent it live, and the vendor bills it at the live price, not the batch price.

The mark is a top-level field of the response, `cotbridge_sent_live`, holding why the job gave no result. It is
stored with the response in the cache, and every sample split from the response keeps it. The request pipeline
charges a marked response at the model's live price under a budget; a study's report prices its tokens at the live
price (`cotbridge.analysis.report.cost_summary`).
"""

from __future__ import annotations

from typing import Any

SENT_LIVE = "cotbridge_sent_live"


def mark_sent_live(response: dict[str, Any], why: str) -> dict[str, Any]:
    """The response with the mark saying it was sent live, and why (a copy: the caller's dict is left alone)."""
    return {**response, SENT_LIVE: why or "the batch job gave no result"}


def sent_live(response: dict[str, Any]) -> bool:
    """Whether a batch model's request was sent live (billed at the live price)."""
    return bool(response.get(SENT_LIVE))


# The mark as a key in the stored JSON text: inside a string (a model's answer quoting it) its quotes are escaped.
_SENT_LIVE_KEY = f'"{SENT_LIVE}":'


def stored_sent_live(response_json: str) -> bool:
    """`sent_live` of a response as the cache stores it (its JSON text), without parsing it."""
    return _SENT_LIVE_KEY in response_json
