"""Anthropic's Message Batches API, after the batch processing guide
(https://platform.claude.com/docs/en/build-with-claude/batch-processing) and the API reference
(https://platform.claude.com/docs/en/api/creating-message-batches, .../retrieving-message-batches,
.../retrieving-message-batch-results).

- `POST /v1/messages/batches {requests: [{custom_id, params}]}`: custom_id 1 to 64 characters of `[a-zA-Z0-9_-]`,
  unique in the batch (else a 400); headers `x-api-key` and `anthropic-version`. Answers a MessageBatch,
  `processing_status: "in_progress"`, every request counted as processing.
- `GET /v1/messages/batches/{id}`: the batch; it ends on its second retrieval (`processing_status: "ended"`,
  `ended_at`, `results_url`), with each request succeeded or errored, or, for a batch created while
  `expire_jobs` > 0, every request but the first `expired`.
- `GET /v1/messages/batches/{id}/results`: JSON Lines `{custom_id, result: {type, message | error}}`, in reverse
  order (the reference promises no order).
Each request's `params` is answered by the Messages API imitation (`anthropic_reply`); a refused one (400) is an
errored result, as is a request holding ITEM_ERROR_MARKER (an `api_error`). Counts `created` and `retrievals`.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.imitations.anthropic import anthropic_reply
from tests.imitations.openai_batch import ITEM_ERROR_MARKER

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CREATED_AT = "2026-12-01T18:37:24.100435Z"


@dataclass
class _Batch:
    batch: dict[str, Any]
    requests: list[dict[str, Any]]
    expire: bool
    polls: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AnthropicBatchImitation:
    key: str = ""  # the x-api-key it takes (empty: any)
    expire_jobs: int = 0
    created: int = 0
    retrievals: int = 0
    batches: dict[str, _Batch] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        self.expire_jobs = self.created = self.retrievals = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self.create)
        app.router.add_get("/v1/messages/batches/{batch_id}", self.retrieve)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self.results)

    def _refused(self, request: web.Request) -> web.Response | None:
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        if self.key and request.headers.get("x-api-key") != self.key:
            return _error(401, "authentication_error", "invalid x-api-key")
        return None

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return _error(400, "invalid_request_error", "requests: at least one request is required")
        ids = [item.get("custom_id") for item in requests]
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and CUSTOM_ID.match(i) for i in ids):
            return _error(400, "invalid_request_error", "custom_id must match ^[a-zA-Z0-9_-]{1,64}$ and be unique")
        self.created += 1
        batch_id = f"msgbatch_{next(self._ids):04d}"
        batch = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None,
            "created_at": CREATED_AT,
            "expires_at": "2026-12-02T18:37:24.100435Z",
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        expire = self.expire_jobs > 0
        self.expire_jobs -= expire
        self.batches[batch_id] = _Batch(batch, requests, expire)
        return web.json_response(batch)

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        held = self.batches.get(request.match_info["batch_id"])
        if held is None:
            return _error(404, "not_found_error", "batch not found")
        self.retrievals += 1
        held.polls += 1
        if held.batch["processing_status"] == "in_progress" and held.polls >= 2:
            self._end(held, f"{request.scheme}://{request.host}")
        return web.json_response(held.batch)

    def _end(self, held: _Batch, root_url: str) -> None:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for number, item in enumerate(held.requests):
            result: dict[str, Any]
            if held.expire and number > 0:
                result = {"type": "expired"}
            elif ITEM_ERROR_MARKER in json.dumps(item["params"]):
                result = {"type": "errored", "error": {"type": "error", "error": _body("api_error", "Internal error")}}
            else:
                status, reply = anthropic_reply(item["params"])
                result = (
                    {"type": "succeeded", "message": reply} if status == 200 else {"type": "errored", "error": reply}
                )
            counts[result["type"]] += 1
            held.results.append({"custom_id": item["custom_id"], "result": result})
        batch_id = held.batch["id"]
        held.batch.update(
            processing_status="ended",
            request_counts=counts,
            ended_at="2026-12-01T19:00:00Z",
            results_url=f"{root_url}/v1/messages/batches/{batch_id}/results",
        )

    async def results(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        held = self.batches.get(request.match_info["batch_id"])
        if held is None or held.batch["processing_status"] != "ended":
            return _error(404, "not_found_error", "no results for this batch (yet)")
        text = "".join(json.dumps(row) + "\n" for row in reversed(held.results))
        return web.Response(text=text, content_type="application/binary")


def _body(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message}


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": _body(kind, message)}, status=status)
